"""scripts/benchmark.py in its quick mode over the six streams: the table has a row per history
length and client, both clients print the same records, and each endpoint receives exactly its
requests: 2 * ceil(N / window_days) + 1 on /accounts/me/usage/calls (each window once for daily and
once for hourly, the whole range once for allTime), ceil(N / window_days) on /agents/usage and
/accounts/me/usage/concurrency, ceil(N / min(window_days, 90)) on /accounts/me/billing/usage; the
scheduled sync after it one request per stream. The per-stream CPU table has a row per stream with
numbers (never checked against any value: timing is never asserted). The minute-bucket concurrency
case prints a record per minute from both clients, a request per window, its target line and a
py-spy profile; a baseline connector (here the same build) gets rows and the scheduled sync's target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "benchmark.py"
ROW = re.compile(
    r"^\| (\d+) \| (connector|minimal) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|"
)
ENDPOINT_ROW = re.compile(r"^\| (\d+) \| (/[a-z/]+) \| (\d+) \| ([\d/]+) \| ([\d/]+) \| ([^|]+) \|$")
CALLS, AGENTS = "/accounts/me/usage/calls", "/agents/usage"
CONCURRENCY, BILLING = "/accounts/me/usage/concurrency", "/accounts/me/billing/usage"
MAIN_HEADER = "| days | client | requests | wall s | records | records/s | peak RSS MB | ratio |"
ENDPOINT_HEADER = "| days | endpoint | expected | connector | minimal | records per stream |"
PER_STREAM_HEADER = (
    "| stream | records | connector CPU s | minimal CPU s | connector CPU ms / 1,000 records "
    "| minimal CPU ms / 1,000 records | ratio |"
)
WHERE_HEADER = (
    "| days | client | wall s (min-max) | start-up s | requests s | after last s | longest request s "
    "| in flight | CPU s | switches | longest window, days |"
)
SIX_STREAMS = ["allTime", "daily", "hourly", "agentDaily", "concurrency", "billingDaily"]
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
SWITCHES = re.compile(r"\d{1,3}(,\d{3})*")  # a count, with thousands separators

# window_days 91, above billing's 90-day cap. 3 days: one window covering the whole range, so the
# three /usage/calls requests are alike. 181 days: two windows (91 + 90) on the call, agent and
# concurrency endpoints, three billing windows (90 + 90 + 1).
DAYS, WINDOW = (3, 181), 91
EXPECTED = {
    3: {CALLS: 3, AGENTS: 1, CONCURRENCY: 1, BILLING: 1},
    181: {CALLS: 5, AGENTS: 2, CONCURRENCY: 2, BILLING: 3},
}


def benchmark(*args: str, timeout: int) -> str:
    """The script's stdout for these arguments; it must exit 0."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def cells(lines: list[str], header: str) -> list[list[str]]:
    """The cells of each row of the Markdown table under `header`."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table(lines, header)]


def switch_count(cell: str) -> int:
    """A switches cell: a count with thousands separators."""
    assert SWITCHES.fullmatch(cell), cell
    return int(cell.replace(",", ""))


def table(lines: list[str], header: str) -> list[str]:
    """The rows of the Markdown table under `header`, up to the blank line ending it."""
    assert header in lines, "\n".join(lines)
    rows = []
    for line in lines[lines.index(header) + 2 :]:
        if not line.strip():
            break
        rows.append(line)
    return rows


def test_quick_benchmark_prints_exact_request_counts_per_endpoint() -> None:
    stdout = benchmark(
        *["--quick", "--days", *map(str, DAYS), "--window-days", str(WINDOW)],
        *["--num-workers", "2", "--latency", "0.01", "--repeats", "1", "--spec-runs", "1"],
        timeout=180,
    )
    lines = stdout.splitlines()

    rows = {}
    for line in table(lines, MAIN_HEADER):
        match = ROW.match(line)
        assert match, line
        rows[(int(match[1]), match[2])] = [cell.strip() for cell in match.groups()[2:]]
    assert set(rows) == {(n, client) for n in DAYS for client in ("connector", "minimal")}, stdout

    per_endpoint: dict[int, dict[str, tuple[str, str, str, dict[str, int]]]] = {}
    for line in table(lines, ENDPOINT_HEADER):
        match = ENDPOINT_ROW.match(line)
        assert match, line
        records = {name: int(count) for name, count in (pair.split() for pair in match[6].split(", "))}
        per_endpoint.setdefault(int(match[1]), {})[match[2]] = (match[3], match[4], match[5], records)

    for n in DAYS:
        assert list(per_endpoint[n]) == [CALLS, AGENTS, CONCURRENCY, BILLING], per_endpoint[n]
        for endpoint, count in EXPECTED[n].items():
            expected, connector, minimal, _ = per_endpoint[n][endpoint]
            assert expected == connector == minimal == str(count), (n, endpoint, per_endpoint[n][endpoint])
        total = sum(EXPECTED[n].values())
        connector, minimal = rows[(n, "connector")], rows[(n, "minimal")]
        assert connector[0] == minimal[0] == str(total), (n, connector, minimal)

        records = {k: v for row in per_endpoint[n].values() for k, v in row[3].items()}
        assert set(records) == {"allTime", "daily", "hourly", "agentDaily", "concurrency", "billingDaily"}
        hours = 24 * (n - 1) + 16  # every hour up to the sandbox clock's 15:55 today
        assert records["allTime"] == 1
        assert records["daily"] == records["billingDaily"] == n
        assert records["hourly"] == records["concurrency"] == hours
        assert records["agentDaily"] > 0
        assert connector[2] == minimal[2] == str(sum(records.values())), "both clients print the same records"
        for row in (connector, minimal):
            assert float(row[1]) > 0 and float(row[4]) > 0

    for endpoint, formula in (
        (CALLS, r"2 \* ceil\(N / window_days\) \+ 1 \(daily, hourly, allTime\)"),
        (AGENTS, r"ceil\(N / window_days\)"),
        (CONCURRENCY, r"ceil\(N / window_days\)"),
        (BILLING, r"ceil\(N / min\(window_days, 90\)\)"),
    ):
        target = rf"^- PASS: {endpoint}: requests = {formula} in every full sync"
        assert re.search(target, stdout, re.M), (endpoint, stdout)
    scheduled = re.search(r"^Scheduled sync: .* requests (.+) \((\d+) in all\)\.$", stdout, re.M)
    assert scheduled, stdout
    assert scheduled[1] == f"{CALLS} 3, {AGENTS} 1, {CONCURRENCY} 1, {BILLING} 1" and scheduled[2] == "6"
    assert re.search(r"^- PASS: scheduled sync: requests as for N = 3 days", stdout, re.M), stdout
    assert re.search(r"^- (PASS|FAIL): connector peak RSS at 181 days within 30 MB of 3 days", stdout, re.M)
    assert "`source-ultravox-usage spec`" in stdout
    assert re.search(r"^Machine: CPU .+; cores \d+", stdout, re.M)

    # Where the wall time goes: a row per length and client, with the CPU and the context switches.
    where = cells(lines, WHERE_HEADER)
    assert [(int(row[0]), row[1]) for row in where] == sorted(rows), where
    for row in where:
        assert NUMBER.match(row[8]), row
        assert switch_count(row[9]) > 0 or row[1] == "minimal", row  # the connector's threads wait

    # Each stream alone at 181 days (and 1 day): its records as in the full sync, CPU as numbers;
    # allTime (one record at any length) has no per-record figures.
    per_stream = cells(lines, PER_STREAM_HEADER)
    assert [row[0] for row in per_stream] == SIX_STREAMS, per_stream
    for row in per_stream:
        assert int(row[1]) == records[row[0]], (row, records)
        assert NUMBER.match(row[2]) and NUMBER.match(row[3]), row
        if row[0] == "allTime":
            assert row[4:] == ["n/a", "n/a", "n/a"], row
        else:
            assert NUMBER.match(row[4]) and NUMBER.match(row[5]), row
            assert row[6] == "n/a" or re.match(r"^×\d+\.\d+$", row[6]), row
    assert re.search(r"^- N/A: connector wall at the longest history <= 0.25 x", stdout, re.M)
    assert re.search(r"^- N/A: scheduled sync: connector wall <= baseline's x 1.10", stdout, re.M)


def test_quick_benchmark_runs_a_baseline_beside_the_connector() -> None:
    """The baseline here is this very build's console script: rows labeled baseline in the main
    table, its scheduled sync, and the scheduled sync's target (PASS or FAIL: timing)."""
    console = Path(sys.executable).with_name("source-ultravox-usage")
    stdout = benchmark(
        *["--quick", "--days", "3", "--no-per-stream", "--spec-runs", "1"],
        *["--baseline-connector", str(console)],
        timeout=120,
    )
    lines = stdout.splitlines()
    rows = cells(lines, MAIN_HEADER)
    assert [row[1] for row in rows] == ["connector", "baseline", "minimal"], rows
    assert rows[0][2] == rows[1][2] == rows[2][2] == "6" and rows[0][4] == rows[1][4] == rows[2][4], rows
    assert PER_STREAM_HEADER not in lines
    assert re.search(
        r"^Scheduled sync, baseline: .* \d+ records \(the connector's\), 6 requests", stdout, re.M
    )
    assert re.search(
        r"^- (PASS|FAIL): scheduled sync: connector wall <= baseline's x 1.10 \(a 10% margin",
        stdout,
        re.M,
    ), stdout


MINUTE_HEADER = "| days | client | requests | wall s | CPU s | switches | records | CPU µs / record | ratio |"


def test_quick_concurrency_minute_same_records_and_requests(tmp_path: Path) -> None:
    """3 days of minute buckets in windows of 2 days (2 requests) and the 1-day run (1 request):
    a record per minute up to the sandbox clock's, from both clients; then a py-spy profile."""
    from datetime import UTC, datetime, timedelta

    sys.path.insert(0, str(ROOT))
    from scripts.benchmark import NOW

    def minutes(days: int) -> int:
        midnight = datetime.combine(NOW.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
        return -(-int((NOW - midnight).total_seconds()) // 60)

    assert minutes(1) == 15 * 60 + 55 and minutes(3) == 2 * 1440 + 955
    stdout = benchmark(
        *["--concurrency-minute", "--quick", "--window-days", "2", "--profile", str(tmp_path)], timeout=120
    )
    lines = stdout.splitlines()
    rows = cells(lines, MINUTE_HEADER)
    assert [(row[0], row[1]) for row in rows] == [
        ("1", "connector"),
        ("1", "minimal"),
        ("3", "connector"),
        ("3", "minimal"),
    ], rows
    for row in rows:
        days = int(row[0])
        assert row[2] == str(-(-days // 2)), row  # a request per window of 2 days
        assert row[6] == str(minutes(days)), row  # a record per minute, the same from both clients
        assert NUMBER.match(row[3]) and NUMBER.match(row[4]), row
        assert switch_count(row[5]) > 0 or row[1] == "minimal", row
        assert (row[7] == "n/a") == (days == 1), row
    assert re.search(r"^- PASS: concurrency: requests = ceil\(N / window_days\)", stdout, re.M)
    assert re.search(
        r"^- (PASS|FAIL): minute-bucket concurrency: connector CPU per record <= 8 x the minimal client's "
        r"at 3 days",
        stdout,
        re.M,
    ), stdout
    assert re.search(r"served from a cache: 6 hits, 0 computed during the runs", stdout), stdout
    # The profile: one more run of 3 days under py-spy, its raw samples and both tables.
    assert (tmp_path / "concurrency-minute-3d.txt").stat().st_size > 0
    assert "| # | function | file | inclusive % |" in lines and "| # | function | file | self % |" in lines


# The ledger case at a tiny scale: 300 calls a day (below the rates large_daily_rates approximates,
# so the log is the sandbox's own), pages of 50, 2 days (yesterday and today up to the clock).
LEDGER_ROW = re.compile(
    r"^\| (\d+) \| (connector|minimal) \| (\d+) \| (\d+) \| (\d+) \| ([^|]+) \| ([^|]+) \| (\d+) "
    r"\| ([^|]+) \| "
    r"([^|]+) \| ([^|]+) \|$"
)
LEDGER_HEADER = (
    "| days | client | requests | expected | pages/window | wall s | CPU s | records | records/s "
    "| peak RSS MB | ratio |"
)
GRID_HEADER = (
    "| calls_window_days | calls_page_size | requests | windows | pages/window | floor s | wall s | CPU s "
    "| peak RSS MB |"
)
SMALL_HEADER = (
    "| calls_window_days | first sync requests | records | scheduled sync requests | windows read again |"
)
LEDGER_PER_DAY, LEDGER_PAGE, LEDGER_DAYS = 300, 50, (1, 2)


def listed_per_day() -> dict[str, int]:
    """Calls /api/calls lists per day of the benchmark's 2-day log, counted from the log itself."""
    from datetime import timedelta

    sys.path.insert(0, str(ROOT))
    from scripts.benchmark import NOW
    from ultravox_sandbox import generate_calls

    today = NOW.date()
    calls = generate_calls(7, today - timedelta(days=1), today, LEDGER_PER_DAY)
    counts: dict[str, int] = {}
    for call in calls:
        if call.created <= NOW:
            counts[call.created.date().isoformat()] = counts.get(call.created.date().isoformat(), 0) + 1
    return counts


def test_quick_ledger_benchmark_same_records_and_pages() -> None:
    stdout = benchmark(
        *["--ledger", "--quick", "--days", *map(str, LEDGER_DAYS)],
        *["--calls-per-day", str(LEDGER_PER_DAY), "--calls-window-days", "1"],
        *["--calls-page-size", str(LEDGER_PAGE), "--num-workers", "2", "--latency", "0.01"],
        *["--grid-window-days", "1", "2", "--grid-page-sizes", "1000", "--small-days", "5"],
        timeout=300,
    )
    lines = stdout.splitlines()
    per_day = listed_per_day()
    today, yesterday = max(per_day), min(per_day)
    pages = {day: -(-n // LEDGER_PAGE) for day, n in per_day.items()}
    expected = {
        1: (pages[today], per_day[today], pages[today]),
        2: (sum(pages.values()), sum(per_day.values()), max(pages.values())),
    }

    rows = {}
    for line in table(lines, LEDGER_HEADER):
        match = LEDGER_ROW.match(line)
        assert match, line
        rows[(int(match[1]), match[2])] = match.groups()[2:]
    assert set(rows) == {(n, c) for n in LEDGER_DAYS for c in ("connector", "minimal")}, stdout
    for n in LEDGER_DAYS:
        connector, minimal = rows[(n, "connector")], rows[(n, "minimal")]
        requests, records, longest = expected[n]
        # requests, expected, pages of the longest window: the same for both clients, a page per 50 calls
        assert connector[:3] == minimal[:3] == (str(requests), str(requests), str(longest)), (n, rows)
        assert connector[5] == minimal[5] == str(records), "both clients print a record per call listed"
        assert connector[8].startswith("wall ×") and minimal[8] == "1 (floor)"
    assert re.search(r"^- PASS: calls: requests = sum over windows", stdout, re.M), stdout
    assert re.search(r"^- PASS: calls: the same records from both clients", stdout, re.M)
    assert re.search(r"^- (PASS|FAIL): connector peak RSS flat as the history grows: 2 days", stdout, re.M)

    # The scheduled sync after the 2-day sync: back to start_date (lookback 2), a window a day.
    scheduled = re.search(
        r"^Scheduled sync \(big account\): .*: (\d+) requests, (\d+) windows \(([^)]*)\)", stdout, re.M
    )
    assert scheduled, stdout
    assert (int(scheduled[1]), int(scheduled[2])) == (sum(pages.values()), 2), scheduled[0]
    assert scheduled[3] == f"{yesterday}..{yesterday}, {today}..{today}"

    grid = [line.split(" | ") for line in table(lines, GRID_HEADER)]
    assert [(row[0].strip("| "), row[1], row[2], row[3]) for row in grid] == [
        ("1", "1000", "2", "2"),
        ("2", "1000", "1", "1"),
    ], grid

    small = cells(lines, SMALL_HEADER)
    assert [row[0] for row in small] == ["1", "2"], small
    # 5 days of a small account: a request a window; the next sync reads lookback_days + 1 = 3 days again
    assert [row[1] for row in small] == ["5", "3"] and small[0][2] == small[1][2], small
    assert [row[3] for row in small] == ["3", "2"], small
    assert re.search(r"^Machine: CPU .+; cores \d+", stdout, re.M)
