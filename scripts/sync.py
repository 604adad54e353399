"""Sync Ultravox usage into a local DuckDB file with PyAirbyte, through the installed connector.

Run it with `scripts/sync`, which sets up both environments first and runs this file with the
PyAirbyte environment's Python (.venv-pyairbyte). Steps: connection check, a full read of all
streams into DuckDB, then an incremental read that starts from the state PyAirbyte saved in the
DuckDB file (only the last `lookback_days` are fetched again), then a summary read back with SQL.

Environment:
  ULTRAVOX_API_KEY     unset: start the local sandbox (ultravox_sandbox) on loopback with synthetic
                       usage and sync that; set: sync your real account. The key is never printed.
  ULTRAVOX_API_URL     API base URL for a real key (default https://api.ultravox.ai/api)
  ULTRAVOX_START_DATE  first UTC day to sync for a real key (YYYY-MM-DD; default: the connector's)
  ULTRAVOX_DUCKDB      DuckDB file (default: .cache/ultravox_usage.duckdb for a real key,
                       .cache/ultravox_usage_sandbox.duckdb for the sandbox, in the repo)

Exit status 0 on success; otherwise 1 (2 for bad usage, 130 on Ctrl-C) and one line on stderr
starting with "sync failed:". PyAirbyte's own logs stay under .cache/airbyte-logs/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache"
CONNECTOR_VENV = ROOT / ".venv"
CONNECTOR_NAME = "source-ultravox-usage"
CONNECTOR_EXECUTABLE = CONNECTOR_VENV / "bin" / CONNECTOR_NAME
REAL_API_URL = "https://api.ultravox.ai/api"
SANDBOX_DAYS = 400
SANDBOX_START_TIMEOUT_S = 60
STREAMS = (
    "allTime",
    "daily",
    "hourly",
    "agentDaily",
    "concurrency",
    "billingDaily",
    "calls",
    "invoices",
    "account",
)
CURSORS = {
    "daily": "date",
    "hourly": "hourStart",
    "agentDaily": "date",
    "concurrency": "bucketStart",
    "billingDaily": "date",
    "calls": "created",
}
TABLE_DAYS = 10
AGENT_DAYS = 7
CUSTOMER_DAYS = 7
TOP_CUSTOMERS = 5

# PyAirbyte reads these when it is imported: set them before any `import airbyte`. Offline mode
# turns off the connector registry look-ups and the global secret-mask download; DO_NOT_TRACK
# turns off telemetry. Neither is needed to run a local executable.
os.environ["AIRBYTE_OFFLINE_MODE"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("AIRBYTE_LOGGING_ROOT", str(CACHE_DIR / "airbyte-logs"))


class SyncError(Exception):
    """A failure with a message fit to show the user as is."""


@dataclass
class Target:
    label: str
    config: dict[str, Any]
    db_path: Path


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def note(message: str) -> None:
    print(f"    {message}", flush=True)


# --- where to sync from ------------------------------------------------------------------------


@contextlib.contextmanager
def target() -> Iterator[Target]:
    """The config and DuckDB file to use: the real API if ULTRAVOX_API_KEY is set, else a sandbox."""
    key = os.environ.get("ULTRAVOX_API_KEY")
    db_override = os.environ.get("ULTRAVOX_DUCKDB")
    if key is not None:
        key = key.strip()
        if not key:
            raise SyncError("ULTRAVOX_API_KEY is set but empty; unset it to sync the local sandbox")
        url = os.environ.get("ULTRAVOX_API_URL") or REAL_API_URL
        config: dict[str, Any] = {"api_key": key, "api_url": url}
        start_date = os.environ.get("ULTRAVOX_START_DATE")
        if start_date:
            config["start_date"] = start_date.strip()
        db_path = Path(db_override or CACHE_DIR / "ultravox_usage.duckdb")
        yield Target(f"your Ultravox account at {url}", config, db_path)
        return
    with sandbox(SANDBOX_DAYS) as (url, api_key):
        start = (datetime.now(UTC) - timedelta(days=SANDBOX_DAYS)).date()
        config = {"api_key": api_key, "api_url": url, "start_date": start.isoformat()}
        db_path = Path(db_override or CACHE_DIR / "ultravox_usage_sandbox.duckdb")
        yield Target(f"the local sandbox at {url} (synthetic calls since {start})", config, db_path)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel SIGTERM the sandbox if this process dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def sandbox(days: int) -> Iterator[tuple[str, str]]:
    """Start `python -m ultravox_sandbox` with the connector venv's Python; stop it on exit."""
    python = CONNECTOR_VENV / "bin" / "python"
    if not python.exists():
        raise SyncError(f"{python} is missing: run scripts/sync, which creates it")
    sys.path.insert(0, str(ROOT))  # the sandbox package lives at the repo root (stdlib only)
    from ultravox_sandbox import SANDBOX_API_KEY

    CACHE_DIR.mkdir(exist_ok=True)
    log_path = CACHE_DIR / "sandbox.log"
    step("Starting the local Ultravox sandbox (no ULTRAVOX_API_KEY set)")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "ultravox_sandbox", "--host", "127.0.0.1", "--port", "0"]
            + ["--days", str(days)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # Ctrl-C reaches only us; we stop it in `finally`
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        try:
            url = _read_sandbox_url(proc, log_path)
            note(f"listening at {url}")
            yield url, SANDBOX_API_KEY
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()


def _read_sandbox_url(proc: subprocess.Popen[str], log_path: Path) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=left):
                break
            line = proc.stdout.readline()
            if not line:  # EOF: the sandbox exited
                break
            if line.startswith("ULTRAVOX_SANDBOX_URL="):
                return line.split("=", 1)[1].strip()
    if proc.poll() is not None:
        raise SyncError(f"the sandbox exited with status {proc.returncode} before serving (log: {log_path})")
    raise SyncError(f"the sandbox printed no URL within {SANDBOX_START_TIMEOUT_S} s (log: {log_path})")


# --- the sync -------------------------------------------------------------------------------


def sync(tgt: Target) -> None:
    # Google client libraries that PyAirbyte imports warn about Python 3.11's end of life.
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*Python version")
    import airbyte as ab
    from airbyte.caches import DuckDBCache

    step(f"Source: {tgt.label}")
    note(f"connector: {CONNECTOR_EXECUTABLE.relative_to(ROOT)} (PyAirbyte {_version('airbyte')})")
    note(f"DuckDB file: {_shown(tgt.db_path)}")
    tgt.db_path.parent.mkdir(parents=True, exist_ok=True)

    source = ab.get_source(CONNECTOR_NAME, local_executable=CONNECTOR_EXECUTABLE, config=tgt.config)

    step("Checking the connection")
    source.check()

    source.select_all_streams()
    missing = set(STREAMS) - set(source.get_selected_streams())
    if missing:
        raise SyncError(f"the connector does not offer the streams {sorted(missing)}")
    cache = DuckDBCache(db_path=tgt.db_path, cache_dir=CACHE_DIR / "pyairbyte")

    step("Full read of all streams into DuckDB (replacing earlier tables)")
    started = time.monotonic()
    first = source.read(cache=cache, force_full_refresh=True, write_strategy="replace")
    note(f"{first.processed_records:,} records in {time.monotonic() - started:.1f} s")
    marks = {s: _one(cache, "SELECT max(_airbyte_extracted_at) FROM {table}", s) for s in STREAMS}

    state = cache.get_state_provider(source_name=CONNECTOR_NAME)
    saved = ", ".join(f"{s}.{c}={_cursor_value(state, s, c)}" for s, c in CURSORS.items())
    step(f"Incremental read from the state saved in DuckDB ({saved})")
    started = time.monotonic()
    second = source.read(cache=cache)
    took = time.monotonic() - started
    note(f"{second.processed_records:,} records in {took:.1f} s, merged on the primary keys:")
    for stream in STREAMS:
        # Rows the incremental read wrote or replaced carry a later extraction time.
        count, low, high = _rows(
            cache,
            "SELECT count(*), min({cursor}), max({cursor}) FROM {table} WHERE _airbyte_extracted_at > :mark",
            stream,
            mark=marks[stream],
        )[0]
        span = f" ({low} .. {high})" if stream in CURSORS and count else ""
        note(f"  {stream:12} {count:>6,} re-read{span}")

    report(cache)
    tables = ", ".join(f"{cache.schema_name}.{cache.processor.get_sql_table_name(s)}" for s in STREAMS)
    step(f"DuckDB file {_shown(tgt.db_path)}: tables {tables}")


def report(cache: Any) -> None:
    step("Records per stream in DuckDB")
    for stream in STREAMS:
        count = _one(cache, "SELECT count(*) FROM {table}", stream)
        note(f"  {stream:12} {count:>7,}")

    rows = _rows(
        cache,
        "SELECT date, totalcount, errorcount, billedminutes FROM {table} ORDER BY date DESC LIMIT :days",
        "daily",
        days=TABLE_DAYS,
    )
    step(f"Daily usage, last {len(rows)} days (UTC; today is partial)")
    note(f"  {'date':10}  {'calls':>6}  {'errors':>6}  {'billed min':>10}")
    for day, calls, errors, minutes in reversed(rows):
        note(f"  {day!s:10}  {calls:>6,}  {errors:>6,}  {float(minutes):>10,.1f}")

    agents = _rows(
        cache,
        "SELECT agentname, sum(calls), sum(billedminutes) FROM {table}"
        " WHERE date > (SELECT max(date) FROM {table}) - :days GROUP BY agentname ORDER BY 3 DESC",
        "agentDaily",
        days=AGENT_DAYS,
    )
    step(f"Billed minutes per agent, last {AGENT_DAYS} days (calls without an agent are in no row)")
    note(f"  {'agent':24}  {'calls':>6}  {'billed min':>10}")
    for name, calls, minutes in agents:
        note(f"  {name[:24]:24}  {int(calls):>6,}  {float(minutes):>10,.1f}")

    # The customer is the `customer` key of a call's metadata (a JSON column in DuckDB). The last
    # days are the same UTC days as the agents' above: those of the latest call's day and before.
    customers = _rows(
        cache,
        "SELECT metadata->>'customer' AS customer, count(*), coalesce(sum(billeddurationseconds), 0) / 60"
        " FROM {table} WHERE CAST(created AS DATE) > (SELECT max(CAST(created AS DATE)) FROM {table}) - :days"
        " GROUP BY 1 ORDER BY customer IS NULL, 3 DESC, 1",
        "calls",
        days=CUSTOMER_DAYS,
    )
    named = [row for row in customers if row[0] is not None]
    step(f"Top customers by billed minutes, last {CUSTOMER_DAYS} days (the calls' metadata.customer)")
    note(f"  {'customer':24}  {'calls':>6}  {'billed min':>10}")
    for name, calls, minutes in named[:TOP_CUSTOMERS]:
        note(f"  {name[:24]:24}  {int(calls):>6,}  {float(minutes):>10,.1f}")
    if len(named) > TOP_CUSTOMERS:
        note(f"  ... and {len(named) - TOP_CUSTOMERS:,} more customers")
    for _, calls, minutes in customers[len(named) :]:
        note(f"  {'(no customer)':24}  {int(calls):>6,}  {float(minutes):>10,.1f}")


def _rows(cache: Any, sql: str, stream: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run `sql` on the cache: {table} is the stream's table, {cursor} its cursor column (else the
    extraction time), and values are bound as params.

    PyAirbyte lower-cases names in the warehouse: table allTime is `alltime`, column billedMinutes
    is `billedminutes`."""
    from sqlalchemy import text

    table = f"{cache.schema_name}.{cache.processor.get_sql_table_name(stream)}"
    cursor = CURSORS.get(stream, "_airbyte_extracted_at").lower()
    with cache.processor.get_sql_connection() as connection:
        rows = connection.execute(text(sql.format(table=table, cursor=cursor)), params)
        return [tuple(row) for row in rows]


def _one(cache: Any, sql: str, stream: str, **params: Any) -> Any:
    return _rows(cache, sql, stream, **params)[0][0]


def _cursor_value(state: Any, stream: str, cursor: str) -> str:
    message = state.get_stream_state(stream, not_found=None)
    if message is None:
        return "none"
    blob = message.stream.stream_state
    values = blob.model_dump() if hasattr(blob, "model_dump") else dict(blob or {})
    return str(values.get(cursor, "none"))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


# --- errors ---------------------------------------------------------------------------------


def one_line(error: BaseException, secret: str | None = None) -> str:
    """One line saying what failed, from PyAirbyte's structured errors, without the API key."""
    parts: list[str] = []
    log_file: Path | None = None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        get_message = getattr(current, "get_message", None)
        parts.append(get_message() if callable(get_message) else str(current) or type(current).__name__)
        reason = (getattr(current, "context", None) or {}).get("failure_reason")
        if reason:
            parts.append(str(reason))
        elif getattr(current, "log_text", None):
            parts.append(_last_trace(current.log_text) or "")
        log_file = log_file or getattr(current, "log_file", None)
        current = getattr(current, "original_exception", None) or current.__cause__
    unique: list[str] = []
    for part in (" ".join(str(p).split()).rstrip(".") for p in parts):
        if part and not any(part in other for other in unique):
            unique.append(part)
    message = ": ".join(unique) + "."
    if log_file:
        message += f" (connector log: {_shown(Path(log_file))})"
    if secret and len(secret) >= 6:
        message = message.replace(secret, "****")
    return message


def _last_trace(log_text: str | list[str]) -> str | None:
    """The message of the last Airbyte TRACE error in a connector's output, if there is one."""
    lines = log_text.splitlines() if isinstance(log_text, str) else [str(line) for line in log_text]
    for line in reversed(lines):
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            message = json.loads(line)
            if message.get("type") == "TRACE":
                return message["trace"]["error"]["message"]
    return None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/sync", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    if not CONNECTOR_EXECUTABLE.exists():
        print(
            f"sync failed: {CONNECTOR_EXECUTABLE} is missing; run scripts/sync to set it up", file=sys.stderr
        )
        return 1
    secret = (os.environ.get("ULTRAVOX_API_KEY") or "").strip() or None
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the sandbox is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        with target() as tgt:
            sync(tgt)
    except KeyboardInterrupt:
        print("sync failed: interrupted; the sandbox, if started, was stopped", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure ends in one clear line
        print(f"sync failed: {one_line(error, secret)}", file=sys.stderr)
        return 1
    step(f"Done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
