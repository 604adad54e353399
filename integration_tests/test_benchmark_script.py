"""scripts/benchmark.py in its quick mode: the table has a row per history length and client, both
clients print the same records, and the request counts are exactly 2 * ceil(N / window_days) + 1
(each window once for daily and once for hourly, the whole range once for allTime)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "benchmark.py"
ROW = re.compile(
    r"^\| (\d+) \| (connector|minimal) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|"
)


def test_quick_benchmark_prints_exact_request_counts() -> None:
    # One window short of the range, and three windows with a short last one.
    days, window = (3, 10), 4
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--days", *map(str, days), "--window-days", str(window)]
        + ["--num-workers", "2", "--latency", "0.01", "--repeats", "1", "--spec-runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = "| days | client | requests | wall s | records | records/s | peak RSS MB | ratio |"
    lines = proc.stdout.splitlines()
    assert header in lines, proc.stdout
    rows = {}
    for line in lines[lines.index(header) + 2 :]:
        if not line.strip():
            break  # the end of the main table
        match = ROW.match(line)
        assert match, line
        rows[(int(match[1]), match[2])] = [cell.strip() for cell in match.groups()[2:]]
    assert set(rows) == {(n, client) for n in days for client in ("connector", "minimal")}, proc.stdout

    for n in days:
        expected = 2 * math.ceil(n / window) + 1
        connector, minimal = rows[(n, "connector")], rows[(n, "minimal")]
        assert connector[0] == minimal[0] == str(expected), (n, connector, minimal)
        assert connector[2] == minimal[2], "both clients print the same records"
        # allTime once, one daily per day, and every hour up to the sandbox clock's 15:55 today.
        assert int(connector[2]) == 1 + n + 24 * (n - 1) + 16
        for row in (connector, minimal):
            assert float(row[1]) > 0 and float(row[4]) > 0

    assert re.search(r"^- PASS: requests = 2 \* ceil\(N / window_days\) \+ 1", proc.stdout, re.M), proc.stdout
    assert re.search(
        r"^- (PASS|FAIL): connector peak RSS at 10 days within 30 MB of 3 days", proc.stdout, re.M
    )
    assert "`source-ultravox-usage spec`" in proc.stdout
    assert re.search(r"^Machine: CPU .+; cores \d+", proc.stdout, re.M)
