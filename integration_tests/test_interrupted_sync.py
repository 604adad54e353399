"""Interrupted syncs: the installed CLI is SIGKILLed after k STATE messages, then resumed from the
last state it emitted per stream. What a destination would hold (the records each stream emitted
before its last state, deduped on the primary key, plus the resumed sync's) equals the sandbox's
ground truth: no day and no hour missing, whatever k and however many workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from integration_tests.cli import ForkedCli, configured_catalog, executable, run_cli
from ultravox_sandbox import Faults, Sandbox
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW

START, END = "2025-01-01", "2025-03-04"  # 9 windows of 7 days, across a month boundary
WINDOW_STREAMS = ("daily", "hourly")
STREAMS = ("allTime", *WINDOW_STREAMS)
RUN_TIMEOUT = 60


@pytest.fixture
def box() -> Iterator[Sandbox]:
    # Latency spreads the windows out so that kills land mid-sync.
    with Sandbox(
        seed=7, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW, faults=Faults(latency_s=0.05)
    ) as sandbox:
        yield sandbox


def config_for(box: Sandbox, workers: int, lookback: int) -> dict[str, Any]:
    return {
        "api_key": box.api_key,
        "api_url": box.url,
        "start_date": START,
        "end_date": END,
        "window_days": 7,
        "num_workers": workers,
        "lookback_days": lookback,
    }


class Run:
    """One CLI read: the records each stream committed (emitted before its last state), the last
    state per stream, as a state file for the next sync, and what else an orchestrator sees."""

    def __init__(self, streams: Iterable[str] = STREAMS) -> None:
        self.committed: dict[str, list[dict[str, Any]]] = {s: [] for s in streams}
        self.pending: dict[str, list[dict[str, Any]]] = {s: [] for s in streams}
        self.state: dict[str, dict[str, Any]] = {}
        self.state_count = 0
        self.messages = 0
        self.records = 0
        self.errors: list[dict[str, Any]] = []
        self.killed = False
        self.timed_out = False
        self.returncode: int | None = None

    def take(self, line: str) -> None:
        message = json.loads(line)  # every stdout line is an Airbyte message, even when killed
        self.messages += 1
        if message["type"] == "RECORD":
            self.records += 1
            self.pending[message["record"]["stream"]].append(message["record"]["data"])
        elif message["type"] == "STATE":
            stream = message["state"]["stream"]
            name = stream["stream_descriptor"]["name"]
            self.committed[name] += self.pending[name]
            self.pending[name] = []
            self.state[name] = {"type": "STREAM", "stream": stream}
            if name in WINDOW_STREAMS:
                self.state_count += 1
        elif message["type"] == "TRACE" and message["trace"].get("type") == "ERROR":
            self.errors.append(message["trace"]["error"])

    def state_file(self) -> list[dict[str, Any]]:
        return list(self.state.values())


def read_and_kill(
    config: dict[str, Any],
    state: list[dict[str, Any]] | None,
    kill_after: int | None,
    streams: Iterable[str] = STREAMS,
    watch: Callable[[Run], bool] | None = None,
    timeout: float = RUN_TIMEOUT,
    start: Callable[[list[str], Path], Any] | None = None,
) -> Run:
    """Start a read and SIGKILL it right after its `kill_after`-th window STATE message, or right
    after the message on which `watch(run)` (called after every message) returns True. `start`
    starts the CLI (args, stderr file) instead of a subprocess: `ForkedCli` skips its imports."""
    streams = list(streams)
    run = Run(streams)
    with tempfile.TemporaryDirectory() as tmp:
        args = [executable(), "read"]
        for flag, content in (
            ("--config", config),
            ("--catalog", configured_catalog(streams)),
            ("--state", state),
        ):
            if content is not None:
                path = Path(tmp) / f"{flag[2:]}.json"
                path.write_text(json.dumps(content))
                args += [flag, str(path)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(Path(tmp) / "stderr", "w") as stderr:
            if start is None:
                proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
            else:
                proc = start(args, Path(tmp) / "stderr")

            def expire() -> None:  # a hang fails the test, not CI
                run.timed_out = True
                proc.kill()

            watchdog = threading.Timer(timeout, expire)
            watchdog.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    run.take(line)
                    due = kill_after is not None and run.state_count >= kill_after
                    if (due or (watch is not None and watch(run))) and proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                        run.killed = True
                        break
                run.returncode = proc.wait(timeout=timeout)
            finally:
                watchdog.cancel()
                proc.stdout.close()
        assert "Traceback" not in (Path(tmp) / "stderr").read_text()
    return run


def resume(config: dict[str, Any], state: list[dict[str, Any]], streams=STREAMS) -> Run:
    result = run_cli("read", config, configured_catalog(streams), state, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, (result.errors, result.stderr[-2000:])
    assert result.of_type("_NOT_JSON") == []
    run = Run()
    for line in result.stdout.splitlines():
        run.take(line)
    return run


def destination(*runs: Run) -> dict[str, dict[Any, dict[str, Any]]]:
    """What an append-dedup destination holds after these runs: committed records, later wins."""
    tables: dict[str, dict[Any, dict[str, Any]]] = {"daily": {}, "hourly": {}}
    for run in runs:
        for record in run.committed["daily"]:
            tables["daily"][record["date"]] = record
        for record in run.committed["hourly"]:
            tables["hourly"][(record["date"], record["hour"])] = record
    return tables


def assert_equals_ground_truth(box: Sandbox, tables: dict[str, dict[Any, dict[str, Any]]]) -> None:
    truth = box.ground_truth({"fromDate": [START], "toDate": [END]})
    expected_days = [row["date"] for row in truth["daily"]]
    expected_hours = [(row["date"], row["hour"]) for row in truth["hourly"]]
    missing_days = sorted(set(expected_days) - set(tables["daily"]))
    missing_hours = sorted(set(expected_hours) - set(tables["hourly"]))
    assert (missing_days, missing_hours[:5]) == ([], [])
    assert sorted(tables["daily"]) == expected_days
    assert sorted(tables["hourly"]) == expected_hours
    for row in truth["daily"]:
        assert {k: tables["daily"][row["date"]][k] for k in row} == row
    for row in truth["hourly"]:
        assert {k: tables["hourly"][(row["date"], row["hour"])][k] for k in row} == row


@pytest.mark.parametrize(
    ("kill_after", "workers", "lookback"),
    [(1, 1, 0), (3, 2, 0), (5, 3, 0), (3, 3, 2)],
    ids=lambda v: str(v),
)
def test_killed_after_k_states_then_resumed_loses_nothing(
    box: Sandbox, kill_after: int, workers: int, lookback: int
) -> None:
    config = config_for(box, workers, lookback)
    killed = read_and_kill(config, None, kill_after)
    assert killed.killed, "the sync finished before the kill; the test proves nothing"
    assert set(killed.state) & set(WINDOW_STREAMS)
    resumed = resume(config, killed.state_file())
    assert_equals_ground_truth(box, destination(killed, resumed))


def test_killed_twice_in_a_row_then_resumed_loses_nothing(box: Sandbox) -> None:
    config = config_for(box, workers=2, lookback=0)
    first = read_and_kill(config, None, 2)
    second = read_and_kill(config, first.state_file(), 3)
    assert first.killed and second.killed
    # A stream the second run did not checkpoint keeps the state of the first.
    last = resume(config, list({**first.state, **second.state}.values()))
    assert_equals_ground_truth(box, destination(first, second, last))


def test_a_resumed_sync_reads_from_the_saved_cursor_not_from_the_start(box: Sandbox) -> None:
    """Resuming is not a silent full resync: with lookback 0 the resumed windows start on the
    saved day or the day after it."""
    config = config_for(box, workers=1, lookback=0)
    killed = read_and_kill(config, None, 4, streams=["daily"])
    assert killed.killed
    saved = date.fromisoformat(killed.state["daily"]["stream"]["stream_state"]["date"])
    box.clear_log()
    resumed = resume(config, killed.state_file(), streams=["daily"])
    windows = sorted((r.query["fromDate"][0], r.query["toDate"][0]) for r in box.requests)
    assert date.fromisoformat(windows[0][0]) in (saved, saved + timedelta(days=1)), (saved, windows)
    days = {
        **{r["date"]: r for r in killed.committed["daily"]},
        **{r["date"]: r for r in resumed.committed["daily"]},
    }
    truth = box.ground_truth({"fromDate": [START], "toDate": [END]})["daily"]
    assert [days[row["date"]] | row for row in truth] == [days[row["date"]] for row in truth]


@pytest.mark.parametrize("rejected", [False, True], ids=["accepted key", "rejected key"])
def test_a_forked_cli_is_the_console_script(box: Sandbox, rejected: bool) -> None:
    """ForkedCli, the scheduled-sync simulation's way to start hundreds of attempts, emits what the
    console script emits and exits as it does: 0, 1 with the error trace, -9 when killed."""
    config = config_for(box, workers=1, lookback=0)
    if rejected:
        config["api_key"] = "rejected-key-0000000000"

    def seen(run: Run) -> tuple[Any, ...]:
        errors = [(e["message"], e["failure_type"]) for e in run.errors]
        return run.returncode, run.committed, run.pending, run.state, errors

    by_cli, forked = (read_and_kill(config, None, None, start=start) for start in (None, ForkedCli))
    assert seen(forked) == seen(by_cli)
    assert by_cli.returncode == (1 if rejected else 0) and bool(by_cli.errors) is rejected
    if not rejected:
        killed = read_and_kill(config, None, 2, start=ForkedCli)
        assert (killed.killed, killed.returncode, killed.state_count) == (True, -9, 2)
