"""The benchmark of issues 5 and 10: the connector against a minimal hand-written client, side by
side, over all six streams, with the requests each endpoint receives; and the per-record CPU
measurements ("measure first": CPU per 1,000 records per stream, minute-bucket concurrency, a
baseline build beside the connector, py-spy profiles).

    .venv/bin/python scripts/benchmark.py                 # 30, 365 and 1095 days, 3 repeats
    .venv/bin/python scripts/benchmark.py --quick         # 10 days, 1 repeat, 10 ms latency
    .venv/bin/python scripts/benchmark.py --window-days 15 --num-workers 5 --strict
    .venv/bin/python scripts/benchmark.py --baseline-connector ../old/.venv/bin/source-ultravox-usage
    .venv/bin/python scripts/benchmark.py --concurrency-minute          # 365 days of minute buckets
    .venv/bin/python scripts/benchmark.py --concurrency-minute --days 30 --profile /tmp/profiles

A sandbox of the Ultravox API (its four endpoints) runs in this process (a thread) with a fixed
clock and a fixed per-request latency. For every history length N (start_date = end_date - N + 1,
end_date = the sandbox's today) it runs, as subprocesses of this one:

- the connector: `source-ultravox-usage read` with a full catalog of the six streams (allTime
  full refresh, the other five incremental), and the connector's own defaults unless
  --window-days / --num-workers are given;
- a minimal client (this script with --minimal-client) that sends exactly the requests the
  connector sent, taken from the sandbox's log, one after another with plain `requests`, and prints
  the same Airbyte RECORD lines with the same derived fields: the floor without the CDK. Like the
  connector, it asks /accounts/me/usage/calls for each window twice, once for daily and once for
  hourly, and for the whole range once, for allTime; each other endpoint serves one stream
  (agentDaily, concurrency, billingDaily).

Both clients must print, per stream, the same number of records with the same data (compared as
multisets, in any order); otherwise the benchmark fails.

Measured per run: requests sent, in all and per endpoint (the sandbox log, cleared between runs),
wall time (launch to exit), records, records per second, and peak RSS, CPU time and voluntary
context switches of the child (ru_maxrss, ru_utime + ru_stime and ru_nvcsw from `os.wait4`, in a
tiny launcher process: see LAUNCHER). Also, once, the connector's next scheduled
sync, from the longest full sync's state; the start-up time of `source-ultravox-usage spec` and of
`python -c "import requests"`; and where each run's time goes (start-up, requests, after the last).

CPU per 1,000 records per stream (skipped with --no-per-stream): each of the six streams alone (a
catalog of that one stream; the minimal client given only that stream's requests, as the connector
sent them) at the longest history and at 1 day, --repeats runs of each, the records of every run
compared (counts and data; a mismatch fails the benchmark). The table gives, per stream, the
records and CPU (user + system of the process, medians) at the longest history, and the *marginal*
CPU in ms per 1,000 records (= µs per record) of both clients: (CPU(longest) - CPU(1 day)) /
(records(longest) - records(1 day)), so that start-up (the connector imports the CDK, ~1.3 s of
CPU) is not spread over the records; and their ratio. allTime is one record at any length: its
per-record figures are n/a. At a short history (--quick) the difference is within run-to-run
noise, and may be negative.

Targets: each endpoint gets exactly its share of requests in every full sync of N days,
2 * ceil(N / window_days) + 1 on /accounts/me/usage/calls (daily, hourly, allTime),
ceil(N / window_days) on /agents/usage and /accounts/me/usage/concurrency, and
ceil(N / min(window_days, 90)) on /accounts/me/billing/usage; the scheduled sync sends one request
per stream (as for N = lookback_days + 1); the connector is no slower than the minimal client from
365 days up; at the longest history (if >= 365 days) the connector's wall is at most 0.25 x the
(sequential) minimal client's; its peak RSS grows by at most 30 MB from the shortest history to the
longest. The scheduled sync runs 3 times per repeat, the clients in turn (medians of wall and CPU).

A baseline (--baseline-connector PATH: another build's `source-ultravox-usage` console script, e.g.
an older commit's venv) runs beside the connector in every connector measurement, in the same
run: the main table and the wall-time table (rows labeled `baseline`), the per-stream table
(`<stream> (baseline)` rows, the baseline's figures in the connector's columns), its own scheduled
sync from its own state (wall and CPU printed beside the connector's), and the minute-bucket case.
Its records must equal the connector's (same counts and digests), else the benchmark fails. Target:
the scheduled sync's connector wall <= the baseline's x 1.10 (10% for run-to-run noise).

Profiles (--profile DIR, needs py-spy: pip install py-spy, it is in the tests extra): after the
measured runs of the case (default mode: the longest history's sync of all six streams;
--concurrency-minute: 30 days of minute buckets, 3 with --quick, or the longest --days given), the
connector runs once more, unmeasured, under `py-spy record --rate 200 --format raw -o
DIR/<case>.txt -- <connector argv>` (every thread; idle samples left out, py-spy's default), and
the report lists the 25 frames (function, file after site-packages/ or the repository root) with
the largest inclusive share of samples (a frame counted once per sample) and the 15 with the
largest self share.

Changed for issue 10 (six streams instead of allTime, daily and hourly): the catalog, the minimal
client's streams, the record check (data, not just counts), the per-endpoint request table and
targets (the single total-requests target is gone; the main table's requests column is the total),
and the scheduled sync. Time and memory figures are therefore not comparable with earlier runs,
which synced three streams.

It prints Markdown tables, the machine, and PASS/FAIL for the targets; it exits 0 whatever the
targets say unless --strict, and 2 when a run itself fails (a crash, records that differ).

The minute-bucket concurrency case (--concurrency-minute): the concurrency stream alone with
concurrency_bucket minute.

    .venv/bin/python scripts/benchmark.py --concurrency-minute            # 365 days (and 1 day)
    .venv/bin/python scripts/benchmark.py --concurrency-minute --quick    # 3 days, 10 ms latency

For each N of --days (default 365; quick 3) and for 1 day: the connector (its defaults unless
--window-days / --num-workers) and the minimal client, which sends the connector's requests (one
per window, as the connector sent them) one after another and prints the same records (bucketStart
in UTC `%Y-%m-%dT%H:%M:%SZ`, bucket "minute"); both must print one record per minute from
start_date's midnight up to the clock's minute, the same data. Reported per run: requests, wall,
CPU (user + system), records, and CPU µs per record, marginal: (CPU(N) - CPU(1 day)) / (records(N)
- records(1 day)), the 1-day run's CPU subtracted; the ratio of the two clients. Target: the
connector's CPU per record at most 8 x the minimal client's (at the longest N). A minute-bucket
answer costs the sandbox seconds of Python, so a MinuteSandbox (this script's) caches each answer
per query, computed before the measured runs (the windows of each N): neither client pays for it;
the report gives the cache's hits and any answer computed during the runs.

The ledger case (--ledger): the calls stream alone, at a big account's volume.

    .venv/bin/python scripts/benchmark.py --ledger            # 1, 3, 7 days, 100,000 calls a day
    .venv/bin/python scripts/benchmark.py --ledger --quick --calls-per-day 300   # 1, 2 days, 10 ms
    .venv/bin/python scripts/benchmark.py --ledger --grid-window-days 1 3 7 --grid-page-sizes 100 500 1000

A LedgerSandbox (this script's: the sandbox's log, built up to today only, at --calls-per-day; each
window's listing of /api/calls kept between its pages, see LedgerSandbox)
serves N days for each N of --days (start_date = today - N + 1). Per N: the connector reads the
calls stream (incremental, calls_window_days / calls_page_size / num_workers the connector's
defaults unless given); the minimal client (--minimal-ledger-client) reads the same windows, as
many at a time, each from its first page (fromDate, toDate, pageSize) through `next` page by page,
and prints the same records (the allow-list, flattened as the connector does). Both must send the
same requests, per window ceil(calls listed / pageSize), and print the same records, one per call
listed. Measured: requests, wall, CPU (user + system), records, records/s, peak RSS, the ratios;
the target is a peak RSS flat as the history grows (the longest N within 30 MB of the shortest).
Then the scheduled sync after the longest N; the settings grid (--grid-window-days x
--grid-page-sizes, connector only, over --grid-days, a cell skipped when the latency of its pages
alone exceeds --grid-max-floor); and a small account's (20 calls a day) first sync of --small-days
and its scheduled sync, per calls_window_days of the grid.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path


def minimal_client(plan_path: str) -> None:
    """The floor: the connector's requests, in order, with plain requests; one RECORD per element
    of the stream each request is for, as the connector prints them.

    It derives the same fields as the connector (durationSeconds, hourStart, allTime's range, the
    agent on each agentDaily day, concurrency's UTC bucketStart and bucket) so both print the same
    records. Kept to what such a client needs: nothing else is imported."""
    from datetime import UTC, datetime

    import requests

    plan = json.loads(Path(plan_path).read_text())
    out = sys.stdout
    session = requests.Session()
    headers = {"X-API-Key": plan["api_key"]}
    bucket = plan["concurrency_bucket"]

    def emit(stream: str, data: dict) -> None:
        message = {"stream": stream, "data": data, "emitted_at": int(time.time() * 1000)}
        out.write(json.dumps({"type": "RECORD", "record": message}) + "\n")

    def seconds(data: dict) -> dict:
        data["durationSeconds"] = float(data["duration"][:-1])
        return data

    for request in plan["requests"]:
        response = session.get(plan["base"] + request["path"], params=request["params"], headers=headers)
        response.raise_for_status()
        body = response.json()
        stream = request["stream"]
        if stream == "allTime":
            totals = seconds(body["allTime"])
            emit(stream, {**totals, "fromDate": plan["start_date"], "toDate": plan["end_date"]})
        elif stream == "daily":
            for day in body["daily"]:
                emit(stream, seconds(day))
        elif stream == "hourly":
            for hour in body["hourly"]:
                hour["hourStart"] = f"{hour['date']}T{hour['hour']:02d}:00:00Z"
                emit(stream, seconds(hour))
        elif stream == "agentDaily":
            for entry in body:
                agent = entry["agent"]
                for day in entry["usage"]:
                    emit(stream, {**day, "agentId": agent["agentId"], "agentName": agent["name"]})
        elif stream == "concurrency":
            for point in body["timeSeries"]:
                when = datetime.fromisoformat(point.pop("timestamp").replace("Z", "+00:00"))
                point["bucketStart"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                point["bucket"] = bucket
                emit(stream, point)
        else:
            for day in body["dailyUsage"]:
                emit(stream, day)
    out.flush()


def minimal_ledger_client(plan_path: str) -> None:
    """The floor of the calls stream: each window's first page (fromDate, toDate, pageSize), then
    its `next` URL as given, page by page, `workers` windows at a time as the connector reads them;
    one RECORD per call with the connector's allow-list of usage fields, its two Seconds fields,
    medium's kind and sipDetails' two fields flattened, timestamps in one UTC form."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    import requests

    plan = json.loads(Path(plan_path).read_text())
    out, lock = sys.stdout, threading.Lock()
    headers = {"X-API-Key": plan["api_key"]}
    local = threading.local()

    def stamp(value: str | None) -> str | None:
        if value is None:
            return None
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")

    def seconds(value: str | None) -> float | None:
        return None if value is None else float(value[:-1])

    def record(call: dict) -> dict:
        sip = call.get("sipDetails") or {}
        medium = call.get("medium") or None
        # The connector prints a record without its null fields (the CDK's message serializer
        # omits None values), so this client leaves them out too.
        return {name: value for name, value in ledger_fields(call, sip, medium).items() if value is not None}

    def ledger_fields(call: dict, sip: dict, medium: dict | None) -> dict:
        return {
            "callId": call["callId"],
            "created": stamp(call["created"]),
            "joined": stamp(call.get("joined")),
            "ended": stamp(call.get("ended")),
            "endReason": call.get("endReason"),
            "billedDuration": call.get("billedDuration"),
            "billedDurationSeconds": seconds(call.get("billedDuration")),
            "billingStatus": call["billingStatus"],
            "billedSideInputTokens": call.get("billedSideInputTokens"),
            "billedSideOutputTokens": call.get("billedSideOutputTokens"),
            "agentId": call.get("agentId"),
            "metadata": call["metadata"],
            "voice": call.get("voice"),
            "model": call.get("model"),
            "mediumKind": next(iter(medium)) if medium else None,
            "sipBilledDuration": sip.get("billedDuration"),
            "sipBilledDurationSeconds": seconds(sip.get("billedDuration")),
            "sipTerminationReason": sip.get("terminationReason"),
        }

    def window(bounds: list[str]) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        url: str | None = plan["base"] + "/api/calls"
        params: dict | None = {"fromDate": bounds[0], "toDate": bounds[1], "pageSize": plan["page_size"]}
        while url:
            response = session.get(url, params=params, headers=headers)
            response.raise_for_status()
            body = response.json()
            now = int(time.time() * 1000)
            lines = [
                json.dumps(
                    {"type": "RECORD", "record": {"stream": "calls", "data": record(c), "emitted_at": now}}
                )
                for c in body["results"]
            ]
            with lock:
                out.write("\n".join(lines) + "\n" if lines else "")
            url, params = body["next"], None

    with ThreadPoolExecutor(plan["workers"]) as pool:
        list(pool.map(window, plan["windows"]))
    out.flush()


if __name__ == "__main__" and sys.argv[1:2] == ["--minimal-client"]:
    minimal_client(sys.argv[2])
    sys.exit(0)
if __name__ == "__main__" and sys.argv[1:2] == ["--minimal-ledger-client"]:
    minimal_ledger_client(sys.argv[2])
    sys.exit(0)


# ---- the benchmark (everything below runs only in the benchmarking process) -------------------

import argparse  # noqa: E402
import ast  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integration_tests.cli import STREAMS, configured_catalog  # noqa: E402

# The six usage streams this benchmark and its minimal client read (the ledger has --ledger).
AGGREGATE_STREAMS = [name for name in STREAMS if name not in ("calls", "invoices", "account")]
from ultravox_sandbox import (  # noqa: E402
    AGENT_USAGE_PATH,
    BILLING_USAGE_PATH,
    CALLS_PAGE_SIZE,
    CALLS_PATH,
    CONCURRENCY_PATH,
    MAX_BILLING_DAYS,
    USAGE_PATH,
    Faults,
    Sandbox,
    generate_calls,
)
from ultravox_sandbox.ledger import _descending, _key, call_object, listed_states  # noqa: E402
from ultravox_sandbox.pagination import paginate  # noqa: E402

CONSOLE_SCRIPT = Path(sys.executable).with_name("source-ultravox-usage")
# A fixed clock: the sandbox's "now" (and so its today, the config's end_date) never moves.
NOW = dt.datetime(2025, 3, 4, 15, 55, tzinfo=dt.UTC)
DEFAULT_DAYS = (30, 365, 1095)
QUICK_DAYS = (10,)
WALL_TARGET_FROM_DAYS = 365
# At the longest history (from WALL_TARGET_FROM_DAYS up): the connector's wall at most this share
# of the sequential minimal client's.
WALL_RATIO_TARGET = 0.25
# Scheduled syncs per repeat and client, taken in turn: a 2-second run is at the mercy of noise.
SCHEDULED_RUNS = 3
# The scheduled sync's wall against the baseline's: at most this ratio (10% for noise).
SCHEDULED_BASELINE_MARGIN = 1.10
RSS_TARGET_MB = 30.0
# Each endpoint and the streams that read it, in the order the tables list them.
ENDPOINTS = {
    USAGE_PATH: ("allTime", "daily", "hourly"),
    AGENT_USAGE_PATH: ("agentDaily",),
    CONCURRENCY_PATH: ("concurrency",),
    BILLING_USAGE_PATH: ("billingDaily",),
}
STREAM_OF_ENDPOINT = {path: streams[0] for path, streams in ENDPOINTS.items() if len(streams) == 1}


def endpoint_name(path: str) -> str:
    """The path as the API documents it, without the base URL's /api."""
    return path.removeprefix("/api")


def expected_requests(days: int, window_days: int) -> dict[str, int]:
    """Requests per endpoint of a sync reading `days` days: each windowed stream reads every window
    once (daily and hourly both on /usage/calls), billing in windows of at most 90 days, and allTime
    the whole range once."""
    windows = math.ceil(days / window_days)
    return {
        USAGE_PATH: 2 * windows + 1,
        AGENT_USAGE_PATH: windows,
        CONCURRENCY_PATH: windows,
        BILLING_USAGE_PATH: math.ceil(days / min(window_days, MAX_BILLING_DAYS)),
    }


@dataclass
class Run:
    days: int
    client: str
    wall_s: float
    rss_mb: float
    cpu_s: float
    switches: int  # voluntary context switches of the process
    records: Counter
    digests: dict[str, int]  # per stream, an order-free digest of its records' data (record_digest)
    states: list  # the last STATE message of each stream, as a state file holds them
    requests: list  # the sandbox's LoggedRequest entries of this run, in start order
    launched: float
    exited: float

    @property
    def endpoint_counts(self) -> dict[str, int]:
        counts = Counter(r.path for r in self.requests)
        return {path: counts[path] for path in ENDPOINTS}

    @property
    def record_count(self) -> int:
        return sum(self.records.values())

    @property
    def startup_s(self) -> float:
        return self.requests[0].started - self.launched if self.requests else float("nan")

    @property
    def requests_s(self) -> float:
        if not self.requests:
            return float("nan")
        return max(r.ended for r in self.requests) - self.requests[0].started

    @property
    def after_s(self) -> float:
        return self.exited - max(r.ended for r in self.requests) if self.requests else float("nan")

    @property
    def peak_in_flight(self) -> int:
        """The most requests the sandbox was answering at once."""
        events = sorted([(r.started, 1) for r in self.requests] + [(r.ended, -1) for r in self.requests])
        peak = current = 0
        for _, step in events:
            current += step
            peak = max(peak, current)
        return peak

    @property
    def longest_request_s(self) -> float:
        return max((r.ended - r.started for r in self.requests), default=float("nan"))


@dataclass
class Measured:
    """The runs of one (days, client) pair; figures are medians over the repeats."""

    days: int
    client: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in self.runs)

    @property
    def request_counts(self) -> list[int]:
        return [len(run.requests) for run in self.runs]

    def endpoint_counts(self, path: str) -> list[int]:
        return [run.endpoint_counts[path] for run in self.runs]

    @property
    def records(self) -> int:
        return self.runs[0].record_count


class BenchmarkError(RuntimeError):
    pass


# Peak RSS comes from the rusage that wait4 returns for a child. On Linux that figure also covers
# the memory the child had before exec, a copy of its parent's: a child started straight from this
# process (sandbox, call log) would inherit this process's RSS as a floor. So every measured child
# is started from this tiny launcher, a fresh Python of ~10 MB that imports nothing else, spawns the
# command and reports its wall time (launch to exit, on the system-wide monotonic clock that the
# sandbox log uses too), peak RSS, CPU time and voluntary context switches (a thread blocking on a
# lock, a wait or I/O).
LAUNCHER = """
import os, sys, time
out, err, report, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
actions = [(os.POSIX_SPAWN_OPEN, 1, out, flags, 0o644), (os.POSIX_SPAWN_OPEN, 2, err, flags, 0o644)]
launched = time.monotonic()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
_, status, usage = os.wait4(pid, 0)
exited = time.monotonic()
with open(report, "w") as f:
    f.write(repr((os.waitstatus_to_exitcode(status), launched, exited, usage.ru_maxrss,
                  usage.ru_utime + usage.ru_stime, usage.ru_nvcsw)))
"""


@dataclass
class ChildResult:
    wall_s: float
    rss_mb: float
    cpu_s: float
    switches: int
    launched: float
    exited: float
    stdout: Path


def run_child(argv: list[str], workdir: Path, name: str) -> ChildResult:
    """Run argv (an absolute executable first) to completion through the launcher; stdout goes
    to a file, so this process (and its sandbox thread) spends no time reading it meanwhile."""
    stdout_path, stderr_path = workdir / f"{name}.out", workdir / f"{name}.err"
    report_path = workdir / f"{name}.rusage"
    subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(stdout_path), str(stderr_path), str(report_path), *argv],
        check=True,
        cwd=workdir,
    )
    returncode, launched, exited, maxrss_kib, cpu, switches = ast.literal_eval(report_path.read_text())
    if returncode != 0:
        tail = (
            stderr_path.read_text(errors="replace")[-2000:] or stdout_path.read_text(errors="replace")[-2000:]
        )
        raise BenchmarkError(f"{' '.join(argv[:2])} exited with {returncode}:\n{tail}")
    return ChildResult(exited - launched, maxrss_kib / 1024, cpu, switches, launched, exited, stdout_path)


def record_digest(data: dict) -> int:
    """A digest of one record's data, whatever its key order or number formatting; summed over a
    stream's records (mod 2**128) it compares two clients' records as multisets, in any order."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=16).digest(), "big")


def read_output(stdout_path: Path) -> tuple[Counter, dict[str, int], list]:
    """Records per stream, their digests per stream, and the last state of each stream."""
    counts: Counter = Counter()
    digests: dict[str, int] = {}
    states: dict[str, dict] = {}
    with stdout_path.open() as lines:
        for line in lines:
            if line.startswith("{") and '"RECORD"' in line:
                message = json.loads(line)
                if message.get("type") == "RECORD":
                    stream = message["record"]["stream"]
                    counts[stream] += 1
                    digest = digests.get(stream, 0) + record_digest(message["record"]["data"])
                    digests[stream] = digest % 2**128
            elif line.startswith("{") and '"STATE"' in line:
                message = json.loads(line)
                state = message.get("state") or {}
                if message.get("type") == "STATE" and state.get("type") == "STREAM":
                    name = state["stream"]["stream_descriptor"]["name"]
                    states[name] = {"type": "STREAM", "stream": state["stream"]}
            elif '"TRACE"' in line and '"ERROR"' in line:
                raise BenchmarkError(f"{stdout_path.name} reported an error: {line[:2000]}")
    return counts, digests, list(states.values())


def run_connector(
    sandbox: Sandbox,
    days: int,
    config: dict,
    workdir: Path,
    tag: str,
    states: list | None = None,
    streams: list[str] | None = None,
    console: Path = CONSOLE_SCRIPT,
    client: str = "connector",
) -> Run:
    """A read of `streams` (default all six), incremental where they can be; from `states` if
    given; with `console` (the baseline's console script for client "baseline")."""
    argv = connector_argv(workdir, tag, config, streams or AGGREGATE_STREAMS, console, states)
    sandbox.clear_log()
    child = run_child(argv, workdir, f"{client}-{tag}")
    return make_run(days, client, child, sandbox)


def connector_argv(
    workdir: Path,
    tag: str,
    config: dict,
    streams: list[str],
    console: Path = CONSOLE_SCRIPT,
    states: list | None = None,
) -> list[str]:
    """`console read` with this config, a catalog of `streams` and `states`, written to workdir."""
    config_path, catalog_path = workdir / f"config-{tag}.json", workdir / f"catalog-{'-'.join(streams)}.json"
    config_path.write_text(json.dumps(config))
    catalog_path.write_text(json.dumps(configured_catalog(streams)))
    argv = [str(console), "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    if states is not None:
        state_path = workdir / f"state-{tag}.json"
        state_path.write_text(json.dumps(states))
        argv += ["--state", str(state_path)]
    return argv


def minimal_plan(
    sandbox: Sandbox, config: dict, logged: list, concurrency_bucket: str, streams: list[str] | None = None
) -> dict:
    """The connector's requests for the minimal client, each with the stream it is for, the
    connector having read `streams` (default all six). The sandbox
    log does not say which stream sent a request. Each endpoint but /usage/calls serves one stream.
    On /usage/calls, daily and hourly ask for the same windows and allTime for the whole range: of
    the copies of one request, the first plays allTime if it is the whole range (once), then one
    plays daily and one hourly. When one window covers the whole range the three requests are
    alike, and any may play any part. A request beyond these parts (the connector sent a window
    more often than once per stream) fails the benchmark."""
    streams = streams or AGGREGATE_STREAMS
    whole_range = {"fromDate": [config["start_date"]], "toDate": [config["end_date"]]}
    all_time_left = 1 if "allTime" in streams else 0
    usage_parts = [name for name in ("daily", "hourly") if name in streams]
    parts: dict[tuple, list[str]] = {}
    requests = []
    for entry in logged:
        key = (entry.path, tuple(sorted((k, tuple(v)) for k, v in entry.query.items())))
        whole = entry.path == USAGE_PATH and all(
            entry.query.get(name) == value for name, value in whole_range.items()
        )
        if entry.path not in ENDPOINTS:
            raise BenchmarkError(f"the connector sent a request to an unknown endpoint: {entry!r}")
        single = STREAM_OF_ENDPOINT.get(entry.path)
        left = parts.setdefault(key, [single] if single else list(usage_parts))
        if whole and all_time_left:
            stream, all_time_left = "allTime", 0
        elif left:
            stream = left.pop(0)
        else:
            raise BenchmarkError(f"the connector sent {entry!r} more than once per stream")
        params = [[name, value] for name, values in entry.query.items() for value in values]
        requests.append({"path": entry.path, "params": params, "stream": stream})
    return {
        "base": sandbox.origin,
        "api_key": sandbox.api_key,
        "start_date": config["start_date"],
        "end_date": config["end_date"],
        "concurrency_bucket": concurrency_bucket,
        "requests": requests,
    }


def run_minimal(sandbox: Sandbox, days: int, plan: dict, workdir: Path, tag: str) -> Run:
    plan_path = workdir / f"plan-{tag}.json"
    plan_path.write_text(json.dumps(plan))
    sandbox.clear_log()
    child = run_child(
        [sys.executable, str(Path(__file__).resolve()), "--minimal-client", str(plan_path)],
        workdir,
        f"minimal-{tag}",
    )
    return make_run(days, "minimal", child, sandbox)


def make_run(days: int, client: str, child: ChildResult, sandbox: Sandbox) -> Run:
    logged = sorted(sandbox.requests, key=lambda r: r.started)
    records, digests, states = read_output(child.stdout)
    return Run(
        days,
        client,
        child.wall_s,
        child.rss_mb,
        child.cpu_s,
        child.switches,
        records,
        digests,
        states,
        logged,
        child.launched,
        child.exited,
    )


def days_covered(entry: Any) -> int:
    """UTC days that one logged request covers: fromDate to toDate (toDate exclusive on billing),
    or start to end (concurrency), both included."""
    query = entry.query
    try:
        first = dt.date.fromisoformat((query.get("fromDate") or query["start"])[-1][:10])
        last = dt.date.fromisoformat((query.get("toDate") or query["end"])[-1][:10])
    except (KeyError, ValueError):
        return 0
    return (last - first).days + (0 if entry.path == BILLING_USAGE_PATH else 1)


def longest_window(entries: list) -> int:
    """The most days one window request covered on any endpoint, allTime's whole-range request (the
    largest on /usage/calls) left out."""
    calls = sorted(days_covered(e) for e in entries if e.path == USAGE_PATH)[:-1]
    return max(calls + [days_covered(e) for e in entries if e.path != USAGE_PATH], default=0)


def signature(entries: list) -> Counter:
    return Counter((e.path, tuple(sorted((k, tuple(v)) for k, v in e.query.items()))) for e in entries)


def time_command(argv: list[str], runs: int, workdir: Path, warm_up: bool = True) -> tuple[float, float]:
    """Median wall time (s) and peak RSS (MB) of argv over runs, after one unmeasured warm-up."""
    children = [run_child(argv, workdir, f"startup-{i}") for i in range(runs + warm_up)][warm_up:]
    return statistics.median(c.wall_s for c in children), statistics.median(c.rss_mb for c in children)


def connector_defaults(workdir: Path) -> dict[str, Any]:
    spec = subprocess.run(
        [str(CONSOLE_SCRIPT), "spec"], capture_output=True, text=True, check=True, cwd=workdir
    ).stdout
    for line in spec.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("type") == "SPEC":
            properties = message["spec"]["connectionSpecification"]["properties"]
            return {name: prop.get("default") for name, prop in properties.items()}
    raise BenchmarkError("source-ultravox-usage spec printed no SPEC message")


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        from importlib.metadata import version

        cdk = version("airbyte-cdk")
    except Exception:  # noqa: BLE001 (informational only)
        cdk = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "OS": f"{platform.system()} {platform.release()}",
        "airbyte-cdk": cdk,
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/benchmark.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, nargs="+", help=f"history lengths (default {DEFAULT_DAYS})")
    parser.add_argument("--repeats", type=int, help="runs per history length and client (default 3)")
    parser.add_argument("--latency", type=float, help="sandbox latency per request, s (default 0.1)")
    parser.add_argument("--window-days", type=int, help="config window_days (default: the connector's)")
    parser.add_argument("--num-workers", type=int, help="config num_workers (default: the connector's)")
    parser.add_argument("--spec-runs", type=int, help="timed runs of `spec` and of the import (default 5)")
    parser.add_argument(
        "--quick", action="store_true", help="10 days, 1 repeat, 1 spec run, 10 ms latency (unless given)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--no-per-stream",
        action="store_true",
        help="skip the CPU per 1,000 records per stream (each stream alone, at 1 day and the longest)",
    )
    parser.add_argument(
        "--baseline-connector",
        type=Path,
        metavar="PATH",
        help="another build's source-ultravox-usage console script, run beside the connector everywhere",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="after the measured runs, the connector once more under py-spy (DIR/<case>.txt), top frames",
    )
    minute = parser.add_argument_group("the minute-bucket concurrency case (--concurrency-minute)")
    minute.add_argument(
        "--concurrency-minute",
        action="store_true",
        help=f"the concurrency stream alone, minute buckets (days default {CONCURRENCY_MINUTE_DAYS}, "
        f"quick {QUICK_CONCURRENCY_MINUTE_DAYS})",
    )
    ledger = parser.add_argument_group("the ledger case (--ledger): the calls stream alone")
    ledger.add_argument(
        "--ledger",
        action="store_true",
        help=f"benchmark the calls stream alone (days default {LEDGER_DAYS}, quick {QUICK_LEDGER_DAYS})",
    )
    ledger.add_argument(
        "--calls-per-day",
        type=int,
        default=BIG_CALLS_PER_DAY,
        help=f"sandbox calls a day (default {BIG_CALLS_PER_DAY})",
    )
    ledger.add_argument(
        "--calls-window-days", type=int, help="config calls_window_days (default: the connector's)"
    )
    ledger.add_argument(
        "--calls-page-size", type=int, help="config calls_page_size (default: the connector's)"
    )
    ledger.add_argument(
        "--grid-window-days", type=int, nargs="+", help="settings grid: calls_window_days values"
    )
    ledger.add_argument(
        "--grid-page-sizes", type=int, nargs="+", help="settings grid: calls_page_size values"
    )
    ledger.add_argument(
        "--grid-days", type=int, help="history length of the grid (default: the longest --days)"
    )
    ledger.add_argument(
        "--grid-max-floor",
        type=float,
        default=150.0,
        help="skip grid cells whose latency floor exceeds this (s)",
    )
    ledger.add_argument(
        "--small-days",
        type=int,
        default=SMALL_ACCOUNT_DAYS,
        help="small account's first sync, days (default 30)",
    )
    ledger.add_argument("--no-small-account", action="store_true", help="skip the small account's syncs")
    args = parser.parse_args(argv)
    quick = args.quick
    args.days_given = args.days is not None
    if args.baseline_connector is not None:
        args.baseline_connector = args.baseline_connector.absolute()
        if not os.access(args.baseline_connector, os.X_OK):
            parser.error(f"--baseline-connector {args.baseline_connector}: no such executable")
    if args.ledger and (args.concurrency_minute or args.baseline_connector or args.profile):
        parser.error("--ledger takes neither --concurrency-minute, --baseline-connector nor --profile")
    if args.concurrency_minute:
        args.days = args.days or list(QUICK_CONCURRENCY_MINUTE_DAYS if quick else CONCURRENCY_MINUTE_DAYS)
        args.repeats = args.repeats or 1
        args.latency = args.latency if args.latency is not None else (0.01 if quick else 0.1)
        if any(d < 1 for d in args.days) or args.repeats < 1 or args.latency < 0:
            parser.error("--days and --repeats must be positive, --latency not negative")
        return args
    if args.ledger:
        args.days = args.days or list(QUICK_LEDGER_DAYS if quick else LEDGER_DAYS)
        args.repeats = args.repeats or 1
        args.latency = args.latency if args.latency is not None else (0.01 if quick else 0.1)
        if any(d < 1 for d in args.days) or args.repeats < 1 or args.latency < 0 or args.calls_per_day < 0:
            parser.error("--days and --repeats must be positive, --latency and --calls-per-day not negative")
        return args
    args.days = args.days or list(QUICK_DAYS if quick else DEFAULT_DAYS)
    args.repeats = args.repeats or (1 if quick else 3)
    args.spec_runs = args.spec_runs or (1 if quick else 5)
    args.latency = args.latency if args.latency is not None else (0.01 if quick else 0.1)
    if any(d < 1 for d in args.days) or args.repeats < 1 or args.spec_runs < 1 or args.latency < 0:
        parser.error("--days, --repeats and --spec-runs must be positive, --latency not negative")
    return args


def sandbox_config(sandbox: Sandbox, days: int) -> dict:
    """The sandbox's key and URL, and `days` days up to its today."""
    today = NOW.date()
    return {
        "api_key": sandbox.api_key,
        "api_url": sandbox.url,
        "start_date": (today - dt.timedelta(days=days - 1)).isoformat(),
        "end_date": today.isoformat(),
    }


def aggregate_config(
    sandbox: Sandbox, days: int, args: argparse.Namespace, bucket: str | None = None
) -> dict:
    """The config of a sync of `days` days up to the sandbox's today, --window-days and
    --num-workers if given, concurrency_bucket if given."""
    config = sandbox_config(sandbox, days)
    if args.window_days:
        config["window_days"] = args.window_days
    if args.num_workers:
        config["num_workers"] = args.num_workers
    if bucket:
        config["concurrency_bucket"] = bucket
    return config


def same_records(label: str, ours: Run, theirs: Run) -> None:
    """Both runs printed, per stream, as many records with the same data; else a BenchmarkError."""
    if ours.records != theirs.records:
        raise BenchmarkError(
            f"{label}: records differ, {ours.client} {dict(ours.records)} vs {theirs.client} "
            f"{dict(theirs.records)}"
        )
    differ = sorted(name for name in ours.records if ours.digests[name] != theirs.digests[name])
    if differ:
        raise BenchmarkError(
            f"{label}: the {ours.client}'s and {theirs.client}'s {', '.join(differ)} records differ"
        )


def measure(
    sandbox: Sandbox,
    days: int,
    config: dict,
    workdir: Path,
    tag: str,
    streams: list[str],
    bucket: str,
    baseline: Path | None,
    plans: dict,
) -> list[Run]:
    """One run each of the connector, the baseline (if given) and the minimal client over the same
    config: the minimal client sends the connector's requests (the plan of the first run of this
    key, kept in `plans`); all print the same records, else a BenchmarkError."""
    connector = run_connector(sandbox, days, config, workdir, tag, streams=streams)
    runs = [connector]
    if baseline is not None:
        runs.append(
            run_connector(
                sandbox, days, config, workdir, tag, streams=streams, console=baseline, client="baseline"
            )
        )
    key = (days, tuple(streams), bucket)
    if key not in plans:
        plans[key] = (
            minimal_plan(sandbox, config, connector.requests, bucket, streams),
            signature(connector.requests),
        )
    plan, planned = plans[key]
    minimal = run_minimal(sandbox, days, plan, workdir, tag)
    if signature(minimal.requests) != planned:
        raise BenchmarkError(f"{days} days ({', '.join(streams)}): the minimal client sent other requests")
    runs.append(minimal)
    label = f"{days} days ({'all six streams' if len(streams) > 1 else streams[0]})"
    for other in runs[1:]:
        same_records(label, connector, other)
    return runs


def benchmark(args: argparse.Namespace) -> int:
    info = machine()
    days_list = sorted(set(args.days))
    today = NOW.date()
    results: dict[tuple[int, str], Measured] = {}
    baseline = args.baseline_connector
    spy = py_spy() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="ultravox-benchmark-") as tmp:
        workdir = Path(tmp)
        defaults = connector_defaults(workdir)
        window_days = args.window_days or defaults["window_days"]
        num_workers = args.num_workers or defaults["num_workers"]
        lookback_days, bucket = defaults["lookback_days"], defaults["concurrency_bucket"]
        # connector_defaults ran spec once already: that was the warm-up.
        spec = time_command([str(CONSOLE_SCRIPT), "spec"], args.spec_runs, workdir, warm_up=False)
        imports = time_command([sys.executable, "-c", "import requests"], args.spec_runs, workdir)
        bare = time_command([sys.executable, "-c", "pass"], args.spec_runs, workdir)

        history_start = today - dt.timedelta(days=max(days_list) + 30)
        faults = Faults(latency_s=args.latency)
        with Sandbox(history_start=history_start, now=NOW, faults=faults) as sandbox:
            plans: dict = {}
            # The next scheduled sync after the longest full sync, per connector client and repeat.
            scheduled: dict[str, list[Run]] = {}
            for repeat in range(args.repeats):
                for days in days_list:
                    config = aggregate_config(sandbox, days, args)
                    tag = f"{days}-{repeat}"
                    runs = measure(
                        sandbox, days, config, workdir, tag, AGGREGATE_STREAMS, bucket, baseline, plans
                    )
                    if days == days_list[-1]:
                        # The next scheduled sync, from this sync's state: each stream re-reads its
                        # last lookback_days + 1 days (the clock stays put: the same windows). It is
                        # short and noisy: SCHEDULED_RUNS times a repeat, the clients in turn.
                        for turn in range(SCHEDULED_RUNS):
                            for run in runs[:-1]:
                                console = baseline if run.client == "baseline" else CONSOLE_SCRIPT
                                again = run_connector(
                                    sandbox,
                                    days,
                                    config,
                                    workdir,
                                    f"scheduled-{repeat}-{turn}",
                                    run.states,
                                    console=console,
                                    client=run.client,
                                )
                                scheduled.setdefault(run.client, []).append(again)
                        if "baseline" in scheduled:
                            same_records(
                                "scheduled sync", scheduled["connector"][-1], scheduled["baseline"][-1]
                            )
                    for run in runs:
                        results.setdefault((days, run.client), Measured(days, run.client)).runs.append(run)
                    print(
                        f"[{repeat + 1}/{args.repeats}] {days} days: "
                        + ", ".join(f"{run.client} {run.wall_s:.2f} s" for run in runs)
                        + f" ({len(runs[0].requests)} requests)",
                        file=sys.stderr,
                        flush=True,
                    )
            per_stream = None
            if not args.no_per_stream:
                per_stream = per_stream_cpu(args, sandbox, workdir, days_list[-1], bucket, baseline, plans)
            profiled = None
            if spy is not None:
                config = aggregate_config(sandbox, days_list[-1], args)
                argv = connector_argv(workdir, "profile", config, AGGREGATE_STREAMS)
                profiled = run_profile(spy, Path(args.profile), f"default-{days_list[-1]}d", argv, workdir)

    settings = {"window_days": window_days, "num_workers": num_workers, "lookback_days": lookback_days}
    failed = report(
        args, info, days_list, results, scheduled, settings, spec, imports, bare, per_stream, profiled
    )
    return 1 if failed and args.strict else 0


def per_stream_cpu(
    args: argparse.Namespace,
    sandbox: Sandbox,
    workdir: Path,
    longest: int,
    bucket: str,
    baseline: Path | None,
    plans: dict,
) -> dict[tuple[str, int, str], Measured]:
    """Each of the six streams alone (a catalog of that stream; the minimal client sends only its
    requests), at 1 day and at the longest history, --repeats runs of each client."""
    out: dict[tuple[str, int, str], Measured] = {}
    for stream in AGGREGATE_STREAMS:
        for days in sorted({1, longest}):
            config = aggregate_config(sandbox, days, args)
            for repeat in range(args.repeats):
                tag = f"{stream}-{days}-{repeat}"
                runs = measure(sandbox, days, config, workdir, tag, [stream], bucket, baseline, plans)
                if set(runs[0].records) - {stream}:
                    raise BenchmarkError(f"{stream} alone, {days} days: records of {dict(runs[0].records)}")
                for run in runs:
                    out.setdefault((stream, days, run.client), Measured(days, run.client)).runs.append(run)
        print(
            f"[per stream] {stream}: "
            + ", ".join(
                f"{client} {out[(stream, longest, client)].median('cpu_s'):.2f} s CPU"
                for client in ("connector", "baseline", "minimal")
                if (stream, longest, client) in out
            ),
            file=sys.stderr,
            flush=True,
        )
    return out


def marginal_us(long: Measured, short: Measured) -> float | None:
    """CPU µs per record beyond the short run's (the same figure as ms per 1,000 records):
    (CPU(long) - CPU(short)) / (records(long) - records(short)), medians of the CPU; None when the
    long run has no more records."""
    if long is short or long.records <= short.records:
        return None
    return (long.median("cpu_s") - short.median("cpu_s")) / (long.records - short.records) * 1e6


def figure(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class Targets:
    """The report's machine line and "## Targets" list: one PASS, FAIL or N/A line per target
    (`verdict(ok, text)`); `failed` once any target failed."""

    def __init__(self, info: dict[str, Any]) -> None:
        print("Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + "\n")
        print("## Targets\n")
        self.failed = False

    def __call__(self, ok: bool | None, text: str) -> None:
        self.failed = self.failed or ok is False
        print(f"- {'N/A' if ok is None else 'PASS' if ok else 'FAIL'}: {text}")


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    days_list: list[int],
    results: dict[tuple[int, str], Measured],
    scheduled_runs: dict[str, list[Run]],
    settings: dict[str, int],
    spec: tuple[float, float],
    imports: tuple[float, float],
    bare: tuple[float, float],
    stream_cpu: dict[tuple[str, int, str], Measured] | None,
    profiled: Path | None,
) -> bool:
    """Print the tables and the targets; True when a target failed."""
    window_days, lookback_days = settings["window_days"], settings["lookback_days"]
    clients = [c for c in ("connector", "baseline", "minimal") if (days_list[0], c) in results]
    scheduled = scheduled_runs["connector"][0]
    print("# source-ultravox-usage benchmark (issues 5 and 10)\n")
    print(
        f"Sandbox latency {args.latency * 1000:.0f} ms per request, fixed clock {NOW:%Y-%m-%d %H:%M} UTC, "
        f"end_date {NOW.date()}; all six streams; window_days {window_days}, "
        f"num_workers {settings['num_workers']}; median of {args.repeats} run(s)."
        + (
            f" baseline: {args.baseline_connector}, run beside the connector."
            if args.baseline_connector
            else ""
        )
        + "\n"
    )
    print("| days | client | requests | wall s | records | records/s | peak RSS MB | ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for days in days_list:
        minimal = results[(days, "minimal")]
        for measured in (results[(days, client)] for client in clients):
            counts = sorted(set(measured.request_counts))
            wall, rss = measured.median("wall_s"), measured.median("rss_mb")
            if measured is not minimal:
                ratio = (
                    f"wall ×{wall / minimal.median('wall_s'):.2f}, RSS ×{rss / minimal.median('rss_mb'):.2f}"
                )
            else:
                ratio = "1 (floor)"
            print(
                f"| {days} | {measured.client} | {'/'.join(map(str, counts))} | {wall:.2f} | "
                f"{measured.records} | {measured.records / wall:,.0f} | {rss:.1f} | {ratio} |"
            )
    print()
    print(
        "requests: all endpoints (per endpoint below); records: all six streams, the same data from "
        "both clients.\n"
    )

    print(
        "Requests per endpoint in a full sync of N days (expected: 2 * ceil(N / window_days) + 1 on "
        "/usage/calls,\nceil(N / window_days) on agents and concurrency, ceil(N / min(window_days, "
        f"{MAX_BILLING_DAYS})) on billing), and records per stream:\n"
    )
    print("| days | endpoint | expected | connector | minimal | records per stream |")
    print("|---:|---|---:|---:|---:|---|")
    for days in days_list:
        expected = expected_requests(days, window_days)
        connector, minimal = results[(days, "connector")], results[(days, "minimal")]
        records = connector.runs[0].records
        for path, streams in ENDPOINTS.items():
            sent = ["/".join(map(str, sorted(set(m.endpoint_counts(path))))) for m in (connector, minimal)]
            per_stream = ", ".join(f"{stream} {records[stream]}" for stream in streams)
            print(
                f"| {days} | {endpoint_name(path)} | {expected[path]} | {sent[0]} | {sent[1]} | "
                f"{per_stream} |"
            )
    print()
    scheduled_days = min(days_list[-1], lookback_days + 1)
    scheduled_expected = expected_requests(scheduled_days, window_days)
    sched = {
        client: (statistics.median(r.wall_s for r in runs), statistics.median(r.cpu_s for r in runs))
        for client, runs in scheduled_runs.items()
    }
    print(
        f"Scheduled sync: the connector again right after the {days_list[-1]}-day sync, from its state "
        f"(each stream re-reads lookback_days {lookback_days}): {sched['connector'][0]:.2f} s, "
        f"CPU {sched['connector'][1]:.2f} s (medians of {len(scheduled_runs['connector'])}), "
        f"{scheduled.record_count} records, requests "
        + ", ".join(f"{endpoint_name(p)} {n}" for p, n in scheduled.endpoint_counts.items())
        + f" ({len(scheduled.requests)} in all).\n"
    )
    if "baseline" in sched:
        base = scheduled_runs["baseline"][0]
        print(
            f"Scheduled sync, baseline: the baseline again right after its own {days_list[-1]}-day sync, "
            f"from its state: {sched['baseline'][0]:.2f} s, CPU {sched['baseline'][1]:.2f} s (medians of "
            f"{len(scheduled_runs['baseline'])}), {base.record_count} records (the connector's), "
            f"{len(base.requests)} requests.\n"
        )
    print(
        "Start-up (median of {}): `source-ultravox-usage spec` {:.2f} s, {:.0f} MB; "
        '`python -c "import requests"` {:.2f} s, {:.0f} MB; `python -c pass` {:.2f} s, {:.0f} MB '
        "(the floor of every peak RSS here).\n".format(args.spec_runs, *spec, *imports, *bare)
    )

    print("Where the wall time goes (medians; from the sandbox log's request times):\n")
    print(
        "| days | client | wall s (min-max) | start-up s | requests s | after last s | longest request s "
        "| in flight | CPU s | switches | longest window, days |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for days in days_list:
        for client in clients:
            m = results[(days, client)]
            walls = [run.wall_s for run in m.runs]
            print(
                f"| {days} | {client} | {m.median('wall_s'):.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
                f"{m.median('startup_s'):.2f} | {m.median('requests_s'):.2f} | {m.median('after_s'):.2f} | "
                f"{m.median('longest_request_s'):.2f} | {max(r.peak_in_flight for r in m.runs)} | "
                f"{m.median('cpu_s'):.2f} | {m.median('switches'):,.0f} | "
                f"{longest_window(m.runs[0].requests)} |"
            )
    print()
    print("start-up: launch to the first request reaching the sandbox; requests: first request to the")
    print("last answer; after last: last answer to exit; in flight: the most requests the sandbox")
    print("answered at once (any run); CPU: the child's user + system time; switches: its voluntary")
    print("context switches (getrusage: a thread blocking on a lock, a wait or I/O); longest window:")
    print("the most days one window request covered on any endpoint (allTime's whole-range request")
    print("left out).\n")

    if stream_cpu is not None:
        per_stream_report(args, days_list[-1], stream_cpu)
    if profiled is not None:
        profile_report(profiled)

    verdict = Targets(info)

    formulas = {
        USAGE_PATH: "2 * ceil(N / window_days) + 1 (daily, hourly, allTime)",
        AGENT_USAGE_PATH: "ceil(N / window_days)",
        CONCURRENCY_PATH: "ceil(N / window_days)",
        BILLING_USAGE_PATH: f"ceil(N / min(window_days, {MAX_BILLING_DAYS}))",
    }
    expected = {days: expected_requests(days, window_days) for days in days_list}
    for path, formula in formulas.items():
        sent = {days: results[(days, "connector")].endpoint_counts(path) for days in days_list}
        verdict(
            all(count == expected[days][path] for days in days_list for count in sent[days]),
            f"{endpoint_name(path)}: requests = {formula} in every full sync ("
            + "; ".join(
                f"{days} days: expected {expected[days][path]}, "
                f"sent {'/'.join(map(str, sorted(set(sent[days]))))}"
                for days in days_list
            )
            + ")",
        )
    verdict(
        scheduled.endpoint_counts == scheduled_expected,
        f"scheduled sync: requests as for N = {scheduled_days} days (lookback_days + 1)"
        + (", one per stream (" if scheduled_days <= window_days else " (")
        + "; ".join(
            f"{endpoint_name(p)}: expected {scheduled_expected[p]}, sent {n}"
            for p, n in scheduled.endpoint_counts.items()
        )
        + ")",
    )
    long_runs = [d for d in days_list if d >= WALL_TARGET_FROM_DAYS]
    if long_runs:
        walls = {
            d: (results[(d, "connector")].median("wall_s"), results[(d, "minimal")].median("wall_s"))
            for d in long_runs
        }
        verdict(
            all(c <= m for c, m in walls.values()),
            f"connector wall time <= minimal's from {WALL_TARGET_FROM_DAYS} days up ("
            + ", ".join(f"{d} days: {c:.2f} s vs {m:.2f} s" for d, (c, m) in walls.items())
            + ")",
        )
    else:
        verdict(None, f"connector wall time <= minimal's from {WALL_TARGET_FROM_DAYS} days up (no such run)")
    longest = days_list[-1]
    if longest >= WALL_TARGET_FROM_DAYS:
        c, m = (
            results[(longest, "connector")].median("wall_s"),
            results[(longest, "minimal")].median("wall_s"),
        )
        verdict(
            c <= WALL_RATIO_TARGET * m,
            f"connector wall at {longest} days <= {WALL_RATIO_TARGET} x the sequential minimal client's "
            f"({c:.2f} s vs {WALL_RATIO_TARGET} x {m:.2f} s = {WALL_RATIO_TARGET * m:.2f} s, x{c / m:.2f})",
        )
    else:
        verdict(
            None,
            f"connector wall at the longest history <= {WALL_RATIO_TARGET} x the minimal client's "
            f"(the longest run, {longest} days, is under {WALL_TARGET_FROM_DAYS})",
        )
    if "baseline" in sched:
        (cw, cc), (bw, bc) = sched["connector"], sched["baseline"]
        verdict(
            cw <= SCHEDULED_BASELINE_MARGIN * bw,
            f"scheduled sync: connector wall <= baseline's x {SCHEDULED_BASELINE_MARGIN:.2f} (a 10% margin "
            f"for noise) ({cw:.2f} s vs {bw:.2f} s, x{cw / bw:.2f}; CPU {cc:.2f} s vs {bc:.2f} s; medians "
            f"of {len(scheduled_runs['connector'])})",
        )
    else:
        verdict(
            None,
            f"scheduled sync: connector wall <= baseline's x {SCHEDULED_BASELINE_MARGIN:.2f} "
            "(no --baseline-connector)",
        )
    if len(days_list) > 1:
        low, high = days_list[0], days_list[-1]
        rss_low = results[(low, "connector")].median("rss_mb")
        rss_high = results[(high, "connector")].median("rss_mb")
        verdict(
            rss_high - rss_low <= RSS_TARGET_MB,
            f"connector peak RSS at {high} days within {RSS_TARGET_MB:.0f} MB of {low} days "
            f"({rss_high:.1f} MB vs {rss_low:.1f} MB, {rss_high - rss_low:+.1f} MB)",
        )
    else:
        verdict(
            None, f"connector peak RSS within {RSS_TARGET_MB:.0f} MB across history lengths (one length run)"
        )
    return verdict.failed


def per_stream_report(args: argparse.Namespace, longest: int, per_stream: dict) -> None:
    print(
        f"CPU per 1,000 records per stream: each stream alone (a catalog of that stream; the minimal "
        f"client sends only its requests), at {longest} days and at 1 day, median of {args.repeats} "
        "run(s) each; the records of every run compared (counts and data).\n"
    )
    print(
        "| stream | records | connector CPU s | minimal CPU s | connector CPU ms / 1,000 records "
        "| minimal CPU ms / 1,000 records | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for stream in AGGREGATE_STREAMS:
        minimal = per_stream[(stream, longest, "minimal")]
        floor = marginal_us(minimal, per_stream[(stream, 1, "minimal")])
        for client in ("connector", "baseline"):
            if (stream, longest, client) not in per_stream:
                continue
            long = per_stream[(stream, longest, client)]
            ours = marginal_us(long, per_stream[(stream, 1, client)])
            # A difference within run-to-run noise (a short history) may be zero or negative.
            noise = ours is None or floor is None or ours <= 0 or floor <= 0
            ratio = "n/a" if noise else f"×{ours / floor:.2f}"
            name = stream if client == "connector" else f"{stream} (baseline)"
            print(
                f"| {name} | {long.records} | {long.median('cpu_s'):.2f} | {minimal.median('cpu_s'):.2f} | "
                f"{figure(ours)} | {figure(floor)} | {ratio} |"
            )
    print()
    print(
        f"records, CPU s: at {longest} days; CPU: user + system of the process. CPU ms / 1,000 records is "
        f"marginal: (CPU at {longest} days - CPU at 1 day) / (records at {longest} days - records at 1 day), "
        "in ms per 1,000 records (= µs per record), so that start-up (the connector imports the CDK, "
        "~1.3 s of CPU) is not spread over the "
        "records. allTime: n/a, it is one record at any history length, so there are no records beyond "
        "the 1-day run's to divide by (its CPU s is start-up and one request). ratio: connector / minimal."
        + (
            " (baseline) rows: the baseline connector in the connector's columns."
            if args.baseline_connector
            else ""
        )
        + "\n"
    )


# ---- profiling (--profile) -------------------------------------------------------------------


def py_spy() -> str:
    """The py-spy executable beside this Python, else on PATH; a BenchmarkError without it."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise BenchmarkError("--profile needs py-spy: pip install py-spy (it is in the tests extra)")
    return found


def run_profile(spy: str, out_dir: Path, case: str, argv: list[str], workdir: Path) -> Path:
    """The connector once more under `py-spy record --rate 200 --format raw` (every thread, idle
    samples left out: py-spy's defaults), its samples in out_dir/<case>.txt; not measured."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir.resolve() / f"{case}.txt"
    stdout, stderr = workdir / f"profile-{case}.out", workdir / f"profile-{case}.err"
    print(f"[profile] {case}: py-spy record -o {path}", file=sys.stderr, flush=True)
    with stdout.open("w") as out, stderr.open("w") as err:
        command = [spy, "record", "--rate", "200", "--format", "raw", "-o", str(path), "--", *argv]
        returncode = subprocess.run(command, stdout=out, stderr=err, cwd=workdir).returncode
    if returncode != 0 or not path.exists():
        tail = stderr.read_text(errors="replace")[-2000:]
        raise BenchmarkError(f"py-spy record exited with {returncode} (ptrace permission?):\n{tail}")
    read_output(stdout)  # the profiled sync must not have failed either
    return path


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def frame_key(frame: str) -> tuple[str, str]:
    """(function, file) of one py-spy frame, `function (file:line)`; the file after site-packages/
    or the repository root."""
    match = FRAME.match(frame)
    function, file = (match["function"], match["file"]) if match else (frame, "")
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    elif file.startswith(str(ROOT) + "/"):
        file = file[len(str(ROOT)) + 1 :]
    return function, file


def profile_report(path: Path, top_inclusive: int = 25, top_self: int = 15) -> None:
    """The frames with the largest inclusive share of samples (a frame counted once per sample
    whatever its depth) and the largest self share (the innermost frame)."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_key(f) for f in stack.split(";")]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    print(
        f"Profile: `py-spy record --rate 200 --format raw` of one more connector run (all threads, idle "
        f"samples left out), {total} samples, in {path}.\n"
    )
    for title, counter, top in (("inclusive", inclusive, top_inclusive), ("self", own, top_self)):
        print(f"| # | function | file | {title} % |")
        print("|---:|---|---|---:|")
        for rank, ((function, file), n) in enumerate(counter.most_common(top), 1):
            print(f"| {rank} | `{function}` | {file} | {100 * n / max(total, 1):.1f} |")
        print()


# ---- the minute-bucket concurrency case (--concurrency-minute) ----------------------------------

CONCURRENCY_MINUTE_DAYS = (365,)
QUICK_CONCURRENCY_MINUTE_DAYS = (3,)
CONCURRENCY_PROFILE_DAYS, QUICK_CONCURRENCY_PROFILE_DAYS = 30, 3
CONCURRENCY_CPU_RATIO_TARGET = 8.0


class MinuteSandbox(Sandbox):
    """The sandbox with each /usage/concurrency answer (the encoded body) cached per query: a
    minute-bucket answer takes the sandbox seconds of Python per window, which would compete with
    the client under test for the CPUs. `warm` computes the answers of a sync's windows before the
    measured runs; a request it did not foresee is answered as usual (and counted in `misses`)."""

    def __init__(self, **kwargs: Any) -> None:
        self._answers: dict[tuple, bytes] = {}
        self._answers_lock = threading.Lock()
        self.hits = self.misses = 0
        super().__init__(**kwargs)

    @staticmethod
    def _cache_key(query: dict[str, list[str]]) -> tuple:
        return tuple(sorted((k, tuple(v)) for k, v in query.items()))

    def warm(self, queries: list[dict[str, list[str]]]) -> None:
        for query in queries:
            key = self._cache_key(query)
            if key not in self._answers:
                self._answers[key] = json.dumps(self._concurrency(query, None)).encode()

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], key: str | None, raw_path: str
    ) -> Any:
        cacheable = path == CONCURRENCY_PATH and method == "GET" and key == self.api_key
        if cacheable:
            with self._answers_lock:
                cached = self._answers.get(self._cache_key(query))
            if cached is not None:
                if self.faults.latency_s:
                    self._stopping.wait(self.faults.latency_s)
                with self._answers_lock:
                    self.hits += 1
                return 200, {}, "application/json", cached
        answer = super()._answer(method, path, query, key, raw_path)
        if cacheable and answer is not None and answer[0] == 200:
            with self._answers_lock:
                self._answers[self._cache_key(query)] = answer[3]
                self.misses += 1
        return answer


def concurrency_queries(days: int, window_days: int) -> list[dict[str, list[str]]]:
    """The queries of a full sync's concurrency windows, as the manifest builds them."""
    today = NOW.date()
    start = today - dt.timedelta(days=days - 1)
    return [
        {"start": [f"{a}T00:00:00Z"], "end": [f"{b}T23:59:59Z"], "bucket": ["minute"]}
        for a, b in day_windows(start, today, window_days)
    ]


def minutes_up_to_now(days: int) -> int:
    """Minute buckets from start_date's midnight up to the sandbox's now (its current minute
    included, partial, unless now is a minute's start)."""
    midnight = dt.datetime.combine(NOW.date() - dt.timedelta(days=days - 1), dt.time(), dt.UTC)
    return math.ceil((NOW - midnight).total_seconds() / 60)


def concurrency_minute_benchmark(args: argparse.Namespace) -> int:
    info = machine()
    days_list = sorted(set(args.days))
    lengths = sorted({1, *days_list})
    baseline = args.baseline_connector
    spy = py_spy() if args.profile else None
    profile_days = (
        max(days_list)
        if args.days_given
        else (QUICK_CONCURRENCY_PROFILE_DAYS if args.quick else CONCURRENCY_PROFILE_DAYS)
    )
    results: dict[tuple[int, str], Measured] = {}
    with tempfile.TemporaryDirectory(prefix="ultravox-concurrency-benchmark-") as tmp:
        workdir = Path(tmp)
        defaults = connector_defaults(workdir)
        window_days = args.window_days or defaults["window_days"]
        num_workers = args.num_workers or defaults["num_workers"]
        history_start = NOW.date() - dt.timedelta(days=max(*lengths, profile_days) + 30)
        with MinuteSandbox(
            history_start=history_start, now=NOW, faults=Faults(latency_s=args.latency)
        ) as sandbox:
            warmed = time.monotonic()
            for days in sorted({*lengths, profile_days if spy else 1}):
                sandbox.warm(concurrency_queries(days, window_days))
            warm_s = time.monotonic() - warmed
            print(f"[concurrency minute] sandbox answers computed in {warm_s:.1f} s", file=sys.stderr)
            plans: dict = {}
            for repeat in range(args.repeats):
                for days in lengths:
                    config = aggregate_config(sandbox, days, args, "minute")
                    tag = f"minute-{days}-{repeat}"
                    runs = measure(
                        sandbox, days, config, workdir, tag, ["concurrency"], "minute", baseline, plans
                    )
                    expected = minutes_up_to_now(days)
                    for run in runs:
                        if dict(run.records) != {"concurrency": expected}:
                            raise BenchmarkError(
                                f"{run.client}, {days} days: {dict(run.records)} records, {expected} minutes"
                            )
                        results.setdefault((days, run.client), Measured(days, run.client)).runs.append(run)
                    print(
                        f"[concurrency minute {repeat + 1}/{args.repeats}] {days} days: "
                        + ", ".join(f"{r.client} {r.wall_s:.2f} s, {r.cpu_s:.2f} s CPU" for r in runs),
                        file=sys.stderr,
                        flush=True,
                    )
            cache = (warm_s, sandbox.hits, sandbox.misses)  # of the measured runs
            profiled = None
            if spy is not None:
                config = aggregate_config(sandbox, profile_days, args, "minute")
                argv = connector_argv(workdir, "profile", config, ["concurrency"])
                profiled = run_profile(
                    spy, Path(args.profile), f"concurrency-minute-{profile_days}d", argv, workdir
                )
    settings = {"window_days": window_days, "num_workers": num_workers}
    failed = concurrency_minute_report(args, info, lengths, results, settings, cache, profiled)
    return 1 if failed and args.strict else 0


def concurrency_minute_report(
    args: argparse.Namespace,
    info: dict[str, str],
    lengths: list[int],
    results: dict[tuple[int, str], Measured],
    settings: dict[str, int],
    cache: tuple[float, int, int],
    profiled: Path | None,
) -> bool:
    clients = [c for c in ("connector", "baseline", "minimal") if (lengths[0], c) in results]
    print("# source-ultravox-usage benchmark: minute-bucket concurrency\n")
    print(
        "The concurrency stream alone, concurrency_bucket minute, sandbox latency "
        f"{args.latency * 1000:.0f} ms per request, fixed clock {NOW:%Y-%m-%d %H:%M} UTC; "
        f"window_days {settings['window_days']}, "
        f"num_workers {settings['num_workers']}; median of {args.repeats} run(s). The minimal client sends "
        "the connector's requests one after another and prints the same records."
        + (
            f" baseline: {args.baseline_connector}, run beside the connector."
            if args.baseline_connector
            else ""
        )
        + "\n"
    )
    print("| days | client | requests | wall s | CPU s | switches | records | CPU µs / record | ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    per_record: dict[tuple[int, str], float | None] = {}
    for days in lengths:
        for client in clients:
            m = results[(days, client)]
            per_record[(days, client)] = marginal_us(m, results[(1, client)])
        floor = per_record[(days, "minimal")]
        for client in clients:
            m = results[(days, client)]
            ours = per_record[(days, client)]
            if client == "minimal":
                ratio = "1 (floor)"
            elif ours is None or not floor:
                ratio = f"wall ×{m.median('wall_s') / results[(days, 'minimal')].median('wall_s'):.2f}"
            else:
                ratio = (
                    f"CPU/record ×{ours / floor:.2f}, "
                    f"wall ×{m.median('wall_s') / results[(days, 'minimal')].median('wall_s'):.2f}"
                )
            print(
                f"| {days} | {client} | {'/'.join(map(str, sorted(set(m.request_counts))))} | "
                f"{m.median('wall_s'):.2f} | {m.median('cpu_s'):.2f} | {m.median('switches'):,.0f} | "
                f"{m.records} | {figure(ours, 1)} | {ratio} |"
            )
    print()
    warm_s, hits, misses = cache
    print(
        "CPU: user + system of the process; switches: its voluntary context switches. "
        "CPU µs / record is marginal: (CPU at N days - CPU at 1 day) / "
        "(records at N days - records at 1 day) * 1e6, the 1-day run's CPU (start-up, one request) "
        "subtracted; n/a at 1 day. records: one per minute from start_date's midnight up to the clock's "
        f"minute, the same data from every client. Sandbox answers computed ahead in {warm_s:.1f} s and "
        f"served from a cache: {hits} hits, {misses} computed during the runs.\n"
    )
    if profiled is not None:
        profile_report(profiled)
    verdict = Targets(info)
    window_days = settings["window_days"]
    expected = {days: math.ceil(days / window_days) for days in lengths}
    verdict(
        all(
            count == expected[days]
            for days in lengths
            for client in ("connector", "minimal")
            for count in results[(days, client)].request_counts
        ),
        "concurrency: requests = ceil(N / window_days), one per window, both clients ("
        + ", ".join(f"{days} days: {expected[days]}" for days in lengths)
        + ")",
    )
    verdict(True, "concurrency: the same records from every client, one per minute (checked on every run)")
    longest = lengths[-1]
    ours, floor = per_record[(longest, "connector")], per_record[(longest, "minimal")]
    if ours is None or not floor:
        verdict(
            None,
            f"minute-bucket concurrency: connector CPU per record <= {CONCURRENCY_CPU_RATIO_TARGET:g} x the "
            "minimal client's (no run longer than 1 day)",
        )
    else:
        verdict(
            ours <= CONCURRENCY_CPU_RATIO_TARGET * floor,
            f"minute-bucket concurrency: connector CPU per record <= {CONCURRENCY_CPU_RATIO_TARGET:g} x the "
            f"minimal client's at {longest} days ({ours:.1f} µs vs {floor:.1f} µs, x{ours / floor:.2f}; "
            "marginal, the 1-day run subtracted)",
        )
    return verdict.failed


# ---- the ledger case: the calls stream alone at a big account's volume ------------------------

LEDGER_DAYS = (1, 3, 7)
QUICK_LEDGER_DAYS = (1, 2)
BIG_CALLS_PER_DAY = 100_000
SMALL_CALLS_PER_DAY = 20
SMALL_ACCOUNT_DAYS = 30
LEDGER_RSS_TARGET_MB = 30.0
CALLS_CATALOG = {
    "streams": [
        {
            "stream": {
                "name": "calls",
                "json_schema": {},
                "supported_sync_modes": ["full_refresh", "incremental"],
                "source_defined_cursor": True,
                "default_cursor_field": ["created"],
                "source_defined_primary_key": [["callId"]],
            },
            "sync_mode": "incremental",
            "destination_sync_mode": "append_dedup",
            "cursor_field": ["created"],
            "primary_key": [["callId"]],
        }
    ]
}


class LedgerSandbox(Sandbox):
    """The sandbox at a big account's volume, serving /api/calls as the Sandbox does, faster.

    - Its log runs from history_start to today (no 30 days of calls to come: the clock is fixed),
      at calls_per_day.
    - /api/calls keeps each window's listing (the calls it lists, in order, and their keyset keys)
      instead of filtering, sorting and keying the whole window again for every page, which takes
      about a second per request at 100,000 calls a day. A page is then the sandbox's own
      `paginate` over that listing and its own `call_object`s: the same body, as calls_page's. The
      listing is kept per (log, now, query without cursor and pageSize); `warm` fills it before a
      run so that no client pays for it."""

    def __init__(self, **kwargs: Any) -> None:
        self._listings: dict[tuple, tuple[list, list[str]]] = {}
        self._listings_lock = threading.Lock()
        super().__init__(**kwargs)

    def _extend_log(self) -> None:
        wanted_end = self._now.date()
        if wanted_end > self._calls_end:
            start = self._calls_end + dt.timedelta(days=1)
            more = generate_calls(self.seed, start, wanted_end, self.calls_per_day, credits=self.odd_values)
            self._calls = self._calls + more
            self._calls_end = wanted_end

    def listing(self, query: dict[str, list[str]]) -> tuple[list, list[str]]:
        calls, now = self._snapshot()
        filters = tuple(sorted((k, tuple(v)) for k, v in query.items() if k not in ("cursor", "pageSize")))
        key = (id(calls), now, filters)
        with self._listings_lock:
            cached = self._listings.get(key)
        if cached is None:
            states = listed_states(calls, query, now, self.running_calls)
            cached = (states, [_key(s.call) for s in states])
            with self._listings_lock:
                self._listings[key] = cached
        return cached

    def warm(self, windows: list[tuple[str, str]]) -> None:
        with self._listings_lock:
            self._listings.clear()
        for first, last in windows:
            self.listing({"fromDate": [first], "toDate": [last]})

    def _list_calls(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        now = self._snapshot()[1]
        states, keys = self.listing(query)
        page, following, preceding = paginate(
            states,
            keys,
            query,
            self._absolute(CALLS_PATH),
            CALLS_PAGE_SIZE,
            self.calls_page_size_max,
            descending=_descending(query, self.calls_default_sort),
            keep_query=self.next_keeps_filters,
        )
        return {
            "results": [call_object(s, now, self.agent_names) for s in page],
            "next": following,
            "previous": preceding,
            "total": len(states),
        }


def day_windows(start: dt.date, end: dt.date, window_days: int) -> list[tuple[str, str]]:
    """fromDate/toDate of the windows of a full sync from start to end: whole days, window_days each."""
    windows, first = [], start
    while first <= end:
        last = min(first + dt.timedelta(days=window_days - 1), end)
        windows.append((first.isoformat(), last.isoformat()))
        first = last + dt.timedelta(days=1)
    return windows


def listed_count(sandbox: Sandbox, start: dt.date) -> int:
    """The calls /api/calls lists from start's day to now: created from start on, up to now."""
    lo = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    return sum(1 for c in sandbox.calls if lo <= c.created <= sandbox.now)


@dataclass
class LedgerRun:
    client: str
    days: int
    window_days: int
    page_size: int
    run: Run

    @property
    def windows(self) -> list[tuple[str, str]]:
        firsts = [e for e in self.run.requests if e.path == CALLS_PATH and "cursor" not in e.query]
        return sorted({(e.query["fromDate"][-1], e.query["toDate"][-1]) for e in firsts})

    @property
    def pages_per_window(self) -> int:
        pages = Counter()
        for e in self.run.requests:
            pages[(e.query.get("fromDate", [""])[-1], e.query.get("toDate", [""])[-1])] += 1
        return max(pages.values(), default=0)


def ledger_config(sandbox: Sandbox, days: int, window_days: int, page_size: int, workers: int) -> dict:
    return {
        **sandbox_config(sandbox, days),
        "num_workers": workers,
        "calls_window_days": window_days,
        "calls_page_size": page_size,
    }


def run_ledger_connector(
    sandbox: Sandbox, config: dict, days: int, workdir: Path, tag: str, states: list | None = None
) -> LedgerRun:
    config_path, catalog_path = workdir / f"ledger-config-{tag}.json", workdir / "ledger-catalog.json"
    config_path.write_text(json.dumps(config))
    catalog_path.write_text(json.dumps(CALLS_CATALOG))
    argv = [str(CONSOLE_SCRIPT), "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    if states is not None:
        state_path = workdir / f"ledger-state-{tag}.json"
        state_path.write_text(json.dumps(states))
        argv += ["--state", str(state_path)]
    sandbox.clear_log()
    child = run_child(argv, workdir, f"ledger-connector-{tag}")
    run = make_run(days, "connector", child, sandbox)
    child.stdout.unlink()
    return LedgerRun("connector", days, config["calls_window_days"], config["calls_page_size"], run)


def run_ledger_minimal(
    sandbox: Sandbox, config: dict, days: int, windows: list, workdir: Path, tag: str
) -> LedgerRun:
    plan = {
        "base": sandbox.origin,
        "api_key": sandbox.api_key,
        "page_size": config["calls_page_size"],
        "workers": config["num_workers"],
        "windows": windows,
    }
    plan_path = workdir / f"ledger-plan-{tag}.json"
    plan_path.write_text(json.dumps(plan))
    sandbox.clear_log()
    child = run_child(
        [sys.executable, str(Path(__file__).resolve()), "--minimal-ledger-client", str(plan_path)],
        workdir,
        f"ledger-minimal-{tag}",
    )
    run = make_run(days, "minimal", child, sandbox)
    child.stdout.unlink()
    return LedgerRun("minimal", days, config["calls_window_days"], config["calls_page_size"], run)


def check_ledger_run(sandbox: Sandbox, config: dict, ledger: LedgerRun) -> None:
    """Every listed call once: as many records as calls listed from start_date to now, and only
    /api/calls requests, all answered 200."""
    expected = listed_count(sandbox, dt.date.fromisoformat(config["start_date"]))
    got = ledger.run.records.get("calls", 0)
    if set(ledger.run.records) - {"calls"} or got != expected:
        raise BenchmarkError(
            f"{ledger.client}, {ledger.days} days: {dict(ledger.run.records)} records, "
            f"{expected} calls listed"
        )
    bad = [e for e in ledger.run.requests if e.path != CALLS_PATH or e.status != 200]
    if bad:
        raise BenchmarkError(f"{ledger.client}, {ledger.days} days: unexpected requests {bad[:3]!r}")


def expected_ledger_requests(sandbox: Sandbox, config: dict) -> int:
    """Pages of a full sync: per window of calls_window_days whole days, ceil(listed / pageSize),
    at least one (an empty window is one empty page)."""
    start, today = dt.date.fromisoformat(config["start_date"]), NOW.date()
    total = 0
    for first, last in day_windows(start, today, config["calls_window_days"]):
        listed = len(sandbox.listing({"fromDate": [first], "toDate": [last]})[0])
        total += max(1, math.ceil(listed / min(config["calls_page_size"], sandbox.calls_page_size_max)))
    return total


def ledger_benchmark(args: argparse.Namespace) -> int:
    info = machine()
    days_list = sorted(set(args.days))
    today = NOW.date()
    workers = args.num_workers
    with tempfile.TemporaryDirectory(prefix="ultravox-ledger-benchmark-") as tmp:
        workdir = Path(tmp)
        defaults = connector_defaults(workdir)
        workers = workers or defaults["num_workers"]
        window_days = args.calls_window_days or defaults["calls_window_days"]
        page_size = args.calls_page_size or defaults["calls_page_size"]
        lookback_days = defaults["lookback_days"]
        faults = Faults(latency_s=args.latency)
        print(f"building the log: {args.calls_per_day} calls a day, {days_list[-1]} days", file=sys.stderr)
        built = time.monotonic()
        history_start = today - dt.timedelta(days=days_list[-1] - 1)
        with LedgerSandbox(
            history_start=history_start, now=NOW, faults=faults, calls_per_day=args.calls_per_day
        ) as sandbox:
            build_s = time.monotonic() - built
            log_size = len(sandbox.calls)
            main: list[tuple[LedgerRun, LedgerRun, int]] = []
            scheduled: LedgerRun | None = None
            for days in days_list:
                config = ledger_config(sandbox, days, window_days, page_size, workers)
                start = dt.date.fromisoformat(config["start_date"])
                sandbox.warm(day_windows(start, today, window_days))
                expected = expected_ledger_requests(sandbox, config)
                for repeat in range(args.repeats):
                    tag = f"{days}-{repeat}"
                    connector = run_ledger_connector(sandbox, config, days, workdir, tag)
                    check_ledger_run(sandbox, config, connector)
                    minimal = run_ledger_minimal(sandbox, config, days, connector.windows, workdir, tag)
                    check_ledger_run(sandbox, config, minimal)
                    if signature(minimal.run.requests) != signature(connector.run.requests):
                        raise BenchmarkError(f"{days} days: the minimal client sent other requests")
                    if connector.run.digests != minimal.run.digests:
                        raise BenchmarkError(f"{days} days: the clients' calls records differ")
                    main.append((connector, minimal, expected))
                    print(
                        f"[ledger {repeat + 1}/{args.repeats}] {days} days: "
                        f"connector {connector.run.wall_s:.2f} s "
                        f"({len(connector.run.requests)} requests), minimal {minimal.run.wall_s:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    if scheduled is None and days == days_list[-1]:
                        scheduled = run_ledger_connector(
                            sandbox, config, days, workdir, "scheduled", connector.run.states
                        )
            grid: list[tuple[int, int, LedgerRun | None, float]] = []
            grid_days = args.grid_days or days_list[-1]
            if args.grid_window_days and args.grid_page_sizes:
                start = today - dt.timedelta(days=grid_days - 1)
                for grid_window in args.grid_window_days:
                    sandbox.warm(day_windows(start, today, grid_window))
                    for grid_page in args.grid_page_sizes:
                        config = ledger_config(sandbox, grid_days, grid_window, grid_page, workers)
                        floor = latency_floor(sandbox, config, workers, args.latency)
                        if floor > args.grid_max_floor:
                            grid.append((grid_window, grid_page, None, floor))
                            continue
                        tag = f"grid-{grid_window}-{grid_page}"
                        run = run_ledger_connector(sandbox, config, grid_days, workdir, tag)
                        check_ledger_run(sandbox, config, run)
                        grid.append((grid_window, grid_page, run, floor))
                        print(
                            f"[grid] window {grid_window}, page {grid_page}: {run.run.wall_s:.2f} s",
                            file=sys.stderr,
                            flush=True,
                        )
        small: list[tuple[int, LedgerRun, LedgerRun]] = []
        small_windows = args.grid_window_days or [window_days]
        if not args.no_small_account:
            start = today - dt.timedelta(days=args.small_days - 1)
            with Sandbox(
                history_start=start - dt.timedelta(days=30),
                now=NOW,
                faults=faults,
                calls_per_day=SMALL_CALLS_PER_DAY,
            ) as box:
                for small_window in small_windows:
                    config = ledger_config(box, args.small_days, small_window, page_size, workers)
                    first = run_ledger_connector(
                        box, config, args.small_days, workdir, f"small-{small_window}"
                    )
                    again = run_ledger_connector(
                        box, config, args.small_days, workdir, f"small-{small_window}-next", first.run.states
                    )
                    small.append((small_window, first, again))
    settings = {
        "calls_window_days": window_days,
        "calls_page_size": page_size,
        "num_workers": workers,
        "lookback_days": lookback_days,
        "grid_days": grid_days,
    }
    failed = ledger_report(args, info, settings, build_s, log_size, main, scheduled, grid, small)
    return 1 if failed and args.strict else 0


def latency_floor(sandbox: LedgerSandbox, config: dict, workers: int, latency: float) -> float:
    """The least wall time of a full sync at this latency: each window's pages one after another,
    `workers` windows at a time (the longest windows first, at best)."""
    start, today = dt.date.fromisoformat(config["start_date"]), NOW.date()
    size = min(config["calls_page_size"], sandbox.calls_page_size_max)
    pages = sorted(
        (
            max(1, math.ceil(len(sandbox.listing({"fromDate": [a], "toDate": [b]})[0]) / size))
            for a, b in day_windows(start, today, config["calls_window_days"])
        ),
        reverse=True,
    )
    lanes = [0] * min(workers, len(pages))
    for n in pages:
        lanes[lanes.index(min(lanes))] += n
    return max(lanes) * latency


def ledger_report(
    args: argparse.Namespace,
    info: dict[str, str],
    settings: dict[str, int],
    build_s: float,
    log_size: int,
    main: list[tuple[LedgerRun, LedgerRun, int]],
    scheduled: LedgerRun | None,
    grid: list,
    small: list,
) -> bool:
    print("# source-ultravox-usage benchmark: the calls ledger\n")
    print(
        f"The calls stream alone, sandbox at {args.calls_per_day:,} calls a day (weekends 35%), latency "
        f"{args.latency * 1000:.0f} ms per request, fixed clock {NOW:%Y-%m-%d %H:%M} UTC (today's calls up "
        f"to then); calls_window_days {settings['calls_window_days']}, calls_page_size "
        f"{settings['calls_page_size']}, num_workers {settings['num_workers']}; log of {log_size:,} calls "
        f"built in {build_s:.0f} s. The minimal client reads the same windows, the same number at a time, "
        "following `next` page by page.\n"
    )
    print(
        "| days | client | requests | expected | pages/window | wall s | CPU s | records | records/s "
        "| peak RSS MB | ratio |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    by_days: dict[int, list[tuple[LedgerRun, LedgerRun, int]]] = {}
    for entry in main:
        by_days.setdefault(entry[0].days, []).append(entry)
    medians: dict[int, dict[str, float]] = {}
    for days, entries in by_days.items():
        expected = entries[0][2]
        figures = {}
        for index, client in enumerate(("connector", "minimal")):
            runs = [entry[index].run for entry in entries]
            wall = statistics.median(r.wall_s for r in runs)
            cpu = statistics.median(r.cpu_s for r in runs)
            rss = statistics.median(r.rss_mb for r in runs)
            figures[client] = {"wall": wall, "cpu": cpu, "rss": rss}
        medians[days] = {"rss": figures["connector"]["rss"]}
        for index, client in enumerate(("connector", "minimal")):
            first = entries[0][index]
            f, m = figures[client], figures["minimal"]
            counts = "/".join(map(str, sorted({len(e[index].run.requests) for e in entries})))
            records = first.run.record_count
            ratio = (
                f"wall ×{f['wall'] / m['wall']:.2f}, CPU ×{f['cpu'] / m['cpu']:.2f}, "
                f"RSS ×{f['rss'] / m['rss']:.2f}"
                if client == "connector"
                else "1 (floor)"
            )
            print(
                f"| {days} | {client} | {counts} | {expected} | {first.pages_per_window} | {f['wall']:.2f} | "
                f"{f['cpu']:.2f} | {records} | {records / f['wall']:,.0f} | {f['rss']:.1f} | {ratio} |"
            )
    print()
    print(
        "requests: all to /api/calls; expected: per window, ceil(calls listed / pageSize); CPU: user + "
        f"system of the process; median of {args.repeats} run(s).\n"
    )
    if scheduled is not None:
        print(
            f"Scheduled sync (big account): the connector again right after the {scheduled.days}-day sync, "
            f"from its state (lookback_days {settings['lookback_days']}): {len(scheduled.run.requests)} "
            f"requests, {len(scheduled.windows)} windows "
            f"({', '.join(f'{a}..{b}' for a, b in scheduled.windows)}), "
            f"{scheduled.run.record_count} records, {scheduled.run.wall_s:.2f} s, "
            f"peak RSS {scheduled.run.rss_mb:.1f} MB.\n"
        )
    if grid:
        print(
            f"Settings, {settings['grid_days']} days at {args.calls_per_day:,} calls a day, connector only, "
            f"num_workers {settings['num_workers']} (floor: the wall time the pages' latency alone takes, "
            "each window's pages in a row, num_workers windows at a time):\n"
        )
        print(
            "| calls_window_days | calls_page_size | requests | windows | pages/window | floor s | wall s "
            "| CPU s | peak RSS MB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for window, page, run, floor in grid:
            if run is None:
                print(
                    f"| {window} | {page} | - | - | - | {floor:.1f} | "
                    f"not run (floor > {args.grid_max_floor:.0f} s) | - | - |"
                )
                continue
            r = run.run
            print(
                f"| {window} | {page} | {len(r.requests)} | {len(run.windows)} | {run.pages_per_window} | "
                f"{floor:.1f} | {r.wall_s:.2f} | {r.cpu_s:.2f} | {r.rss_mb:.1f} |"
            )
        print()
    if small:
        print(
            f"Small account ({SMALL_CALLS_PER_DAY} calls a day): requests of a {args.small_days}-day first "
            f"sync and of the scheduled sync after it (lookback_days {settings['lookback_days']}):\n"
        )
        print(
            "| calls_window_days | first sync requests | records | scheduled sync requests "
            "| windows read again |"
        )
        print("|---:|---:|---:|---:|---|")
        for window, first, again in small:
            print(
                f"| {window} | {len(first.run.requests)} | {first.run.record_count} | "
                f"{len(again.run.requests)} | "
                f"{', '.join(f'{a}..{b}' for a, b in again.windows)} |"
            )
        print()
    verdict = Targets(info)

    verdict(
        all(len(c.run.requests) == expected == len(m.run.requests) for c, m, expected in main),
        "calls: requests = sum over windows of ceil(calls listed / pageSize), both clients ("
        + ", ".join(f"{d} days: {e[0][2]}" for d, e in by_days.items())
        + ")",
    )
    verdict(True, "calls: the same records from both clients, one per call listed (checked on every run)")
    days_sorted = sorted(medians)
    if len(days_sorted) > 1:
        low, high = medians[days_sorted[0]]["rss"], medians[days_sorted[-1]]["rss"]
        verdict(
            high - low <= LEDGER_RSS_TARGET_MB,
            f"connector peak RSS flat as the history grows: {days_sorted[-1]} days within "
            f"{LEDGER_RSS_TARGET_MB:.0f} MB of {days_sorted[0]} day(s) ({high:.1f} MB vs {low:.1f} MB, "
            f"{high - low:+.1f} MB)",
        )
    else:
        verdict(None, "connector peak RSS flat as the history grows (one length run)")
    return verdict.failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not CONSOLE_SCRIPT.exists():
        print(f"{CONSOLE_SCRIPT} not found: run with the project's .venv/bin/python", file=sys.stderr)
        return 2
    try:
        if args.ledger:
            return ledger_benchmark(args)
        return concurrency_minute_benchmark(args) if args.concurrency_minute else benchmark(args)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
