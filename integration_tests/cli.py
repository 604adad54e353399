"""Run the installed `source-ultravox-usage` console script as a user would, and parse its output;
ForkedCli runs the same script without paying its imports again, for tests that start hundreds."""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONSOLE_SCRIPT = "source-ultravox-usage"
STREAMS = {
    "allTime": {"primary_key": [], "cursor_field": []},
    "daily": {"primary_key": [["date"]], "cursor_field": ["date"]},
    "hourly": {"primary_key": [["date"], ["hour"]], "cursor_field": ["hourStart"]},
    "agentDaily": {"primary_key": [["agentId"], ["date"]], "cursor_field": ["date"]},
    "concurrency": {"primary_key": [["bucketStart"], ["bucket"]], "cursor_field": ["bucketStart"]},
    "billingDaily": {"primary_key": [["date"]], "cursor_field": ["date"]},
    "calls": {"primary_key": [["callId"]], "cursor_field": ["created"]},
    "invoices": {"primary_key": [["invoiceNumber"]], "cursor_field": []},
    "account": {"primary_key": [["accountId"], ["readAt"]], "cursor_field": []},
}


def executable() -> str:
    """The console script installed beside this Python (the test venv), else on PATH."""
    beside = Path(sys.executable).with_name(CONSOLE_SCRIPT)
    return str(beside) if beside.exists() else (shutil.which(CONSOLE_SCRIPT) or CONSOLE_SCRIPT)


# The console script's ~1 s of imports, paid once: attempts are forked from a process that has them.
FORKSERVER = multiprocessing.get_context("forkserver")
# pytest too: each child imports the test runner's __main__, as multiprocessing's children do.
FORKSERVER.set_forkserver_preload(["source_ultravox_usage.run", "pytest"])
# multiprocessing reads a forked child's exit status from a pipe without a lock, and start() reads
# every other child's: two threads reading one status at once leave one of them 255.
EXIT_STATUS = threading.Lock()


class ForkedCli:
    """The console script (`run(args)`) in a process of its own, forked from a server that has
    already imported the connector: for tests that start hundreds of syncs, where the CLI's imports
    would be most of the runtime. The process starts from a fresh import as the CLI's does, writes
    its messages to a pipe, ends with the CLI's exit code, and a SIGKILL ends it as abruptly.
    The part of subprocess.Popen that `read_and_kill` uses. With `clock`, the connector's today is
    that instant's (see `follow_clock`)."""

    def __init__(self, args: list[str], stderr_path: Path, clock: datetime.datetime | None = None) -> None:
        reader, writer = FORKSERVER.Pipe(duplex=False)
        self.process = FORKSERVER.Process(target=run_forked, args=(args[1:], writer, str(stderr_path), clock))
        with EXIT_STATUS:
            self.process.start()
        writer.close()  # the child's copy is now the only writer: end of file when it ends
        self.stdout = open(os.dup(reader.fileno()), encoding="utf-8")  # noqa: SIM115 (closed by the caller)
        reader.close()

    def poll(self) -> int | None:
        with EXIT_STATUS:
            return self.process.exitcode

    def send_signal(self, signal: int) -> None:
        # As Popen.send_signal: a child that ended between poll() and the kill is left alone. Ours
        # are the forkserver's children, which reaps them at once, so the kill then finds no process.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal)  # type: ignore[arg-type]

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int:
        multiprocessing.connection.wait([self.process.sentinel], timeout)
        if (code := self.poll()) is None:
            raise subprocess.TimeoutExpired("forked source-ultravox-usage", timeout or 0)
        return code


def run_forked(
    args: list[str], stdout: Any, stderr_path: str, clock: datetime.datetime | None = None
) -> None:
    """ForkedCli's child: stdout to the pipe, stderr to a file, then the console script's run()."""
    os.dup2(stdout.fileno(), 1)
    stdout.close()
    stderr = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(stderr, 2)
    os.close(stderr)
    if clock is not None:
        follow_clock(clock)
    from source_ultravox_usage.run import run

    try:
        run(args)
    except Exception:  # what the interpreter does with an exception nothing caught: the CDK's hook
        sys.excepthook(*sys.exc_info())
        sys.exit(1)


def follow_clock(clock: datetime.datetime) -> None:
    """The manifest's today_utc() and now_utc() (its windows end at today) read `clock`, a
    sandbox's instant, as if the machine's clock said it: a sandbox days behind the machine then
    meets the connector on the same day, and an end_date after the sandbox's today is in the
    future for both. Only those macros: backoff, timeouts and Retry-After dates keep the machine's
    clock, as the sandbox's faults do, and the connector reads the sandbox's clock from its Date
    header where it needs it (the zero rows)."""
    from airbyte_cdk.sources.declarative.interpolation import macros

    macros.datetime = clock_module(clock)  # type: ignore[attr-defined]


def clock_module(clock: datetime.datetime) -> types.ModuleType:
    """A `datetime` module whose `datetime.now()` is `clock`: what `follow_clock` gives the
    manifest's macros (an in-process test sets it with monkeypatch, which puts the real one back)."""

    class AnyDatetime(type):
        def __instancecheck__(cls, value: object) -> bool:
            return isinstance(value, datetime.datetime)

    class ClockDatetime(datetime.datetime, metaclass=AnyDatetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return clock.astimezone(tz)

    # The macros read `datetime.datetime.now` through their module's name `datetime`.
    module = types.ModuleType("datetime")
    module.__dict__.update(vars(datetime))
    module.datetime = ClockDatetime  # type: ignore[attr-defined]
    return module


# A short range ending on the sandbox fixture's today: four windows of 7 days (7 + 7 + 7 + 2).
SHORT_RANGE = {"start_date": "2025-02-10", "end_date": "2025-03-04", "window_days": 7}


def sandbox_config(box: Any, **overrides: Any) -> dict[str, Any]:
    """A config for `box` over SHORT_RANGE with one worker, so that two runners emit their
    messages in the same order."""
    return {"api_key": box.api_key, "api_url": box.url, **SHORT_RANGE, "num_workers": 1, **overrides}


def configured_catalog(
    streams: Iterable[str] = ("allTime", "daily", "hourly"), incremental: bool = True
) -> dict:
    entries = []
    for name in streams:
        keys = STREAMS[name]
        mode = "incremental" if incremental and keys["cursor_field"] else "full_refresh"
        entries.append(
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"]
                    if keys["cursor_field"]
                    else ["full_refresh"],
                    "source_defined_cursor": bool(keys["cursor_field"]),
                    "default_cursor_field": keys["cursor_field"],
                    "source_defined_primary_key": keys["primary_key"],
                },
                "sync_mode": mode,
                "destination_sync_mode": "append_dedup" if mode == "incremental" else "overwrite",
                "cursor_field": keys["cursor_field"],
                "primary_key": keys["primary_key"],
            }
        )
    return {"streams": entries}


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [
            m["record"]["data"]
            for m in self.of_type("RECORD")
            if stream is None or m["record"]["stream"] == stream
        ]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of_type("STATE")]

    def last_state(self) -> list[dict[str, Any]]:
        """The latest state message per stream, as a state file for the next sync."""
        latest: dict[str, dict[str, Any]] = {}
        for state in self.states:
            latest[state["stream"]["stream_descriptor"]["name"]] = {
                "type": "STREAM",
                "stream": {
                    "stream_descriptor": state["stream"]["stream_descriptor"],
                    "stream_state": state["stream"]["stream_state"],
                },
            }
        return list(latest.values())

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]

    @property
    def connection_status(self) -> dict[str, Any] | None:
        found = self.of_type("CONNECTION_STATUS")
        return found[-1]["connectionStatus"] if found else None


def run_cli(
    command: str,
    config: Mapping[str, Any] | None = None,
    catalog: Mapping[str, Any] | None = None,
    state: list[dict[str, Any]] | None = None,
    timeout: float = 300,
    extra_args: Iterable[str] = (),
    program: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> CliResult:
    """Run `program` (default: the installed console script) with the command and input files."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [*(program or [executable()]), command]
        for flag, content in (("--config", config), ("--catalog", catalog), ("--state", state)):
            if content is not None:
                path = Path(tmp) / f"{flag[2:]}.json"
                path.write_text(json.dumps(content))
                args += [flag, str(path)]
        proc = subprocess.run([*args, *extra_args], capture_output=True, text=True, timeout=timeout, env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, parse_messages(proc.stdout))


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    """Each line of a connector's output as a message; a line that is not JSON as `_NOT_JSON`."""
    messages = []
    for line in stdout.splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            messages.append({"type": "_NOT_JSON", "line": line})
    return messages


def comparable(result: CliResult) -> dict[str, Any]:
    """Every message but its emission time (and account's readAt), for comparing two runs of the
    connector: each stream's own messages (records, states, statuses, errors) in their order, the
    other messages in theirs, and the log lines as a sorted list. The CDK reads streams
    concurrently, even with one worker, so the messages of different streams interleave differently
    from run to run. A trace's stack (file paths differ) is reduced to its last line, the exception
    it ends in."""
    streams: dict[str, list[dict[str, Any]]] = {}
    logs, others = [], []
    for message in result.messages:
        message = copy.deepcopy(message)
        for kind in ("record", "trace"):
            if kind in message:
                message[kind].pop("emitted_at", None)
        if message.get("record", {}).get("stream") == "account":
            message["record"]["data"].pop("readAt", None)  # each read stamps its own time
        error = message.get("trace", {}).get("error")
        if error and error.get("stack_trace"):
            error["stack_trace"] = error["stack_trace"].strip().splitlines()[-1]
        log = message.get("log")
        if log and "Traceback (most recent call last)" in log["message"]:
            log["message"] = log["message"].split("Traceback (most recent call last)")[0]
        if stream := stream_of(message):
            streams.setdefault(stream, []).append(message)
        elif log:
            logs.append(message)
        else:
            others.append(message)
    return {"streams": streams, "others": others, "logs": sorted(logs, key=json.dumps)}


def stream_of(message: dict[str, Any]) -> str | None:
    """The stream a message belongs to, if it names one."""
    if "record" in message:
        return message["record"]["stream"]
    trace = message.get("trace", {})
    holder = message.get("state", {}).get("stream") or trace.get("stream_status") or trace.get("error") or {}
    return holder.get("stream_descriptor", {}).get("name")
