"""Ninety days of scheduled syncs in a few minutes: the warehouse never drifts from the truth.

Each piece is tested alone elsewhere (one kill and resume, one fault, one incremental step); this
tests their composition, the way Airbyte runs the connector: a process of its own per attempt
(the console script, forked from a server that has done its ~1 s of imports: `ForkedCli`), a
destination that keeps what Airbyte's keeps (`Destination`), and the sandbox's clock moved a day
at a time for 90 days, with faults on a seeded share of days.

- The sandbox starts with about a year of history and its clock at a random hour; a first full sync
  of the six streams fills the destination. Then 90 times: the clock moves 24 h give or take 5 h
  (so some calendar days get two syncs and some none; a few syncs land just after midnight while a
  call of the day before still runs), new calls arrive, running calls end, and the scheduled sync
  runs from the committed state with `end_date` = the sandbox's today.
- On a seeded share of days the sandbox misbehaves (`Fault`): 429s with Retry-After in seconds or
  as an HTTP date (small, or over the connector's 600 s limit), 5xx bursts, dropped connections,
  cut bodies, windows refused as too large, and a SIGKILL after some number of messages; some
  days the fault lasts all day and the sync fails three times.
- After every day whose sync succeeded, each incremental stream's table equals the sandbox's truth
  at that sync's clock, row for row from `start_date`, and `allTime` equals the totals. The truth
  is what the API's zero modes list, which is what the connector writes in either mode.
- In that run the sandbox leaves empty days and hours out, and between syncs some calls of the
  days the next sync reads again are deleted (some calls, an hour's, a day's): the buckets they
  leave empty must become zero rows, not keep their old figures.
- The same schedule with a bounded backfill whose `end_date` is ten days after the last sync, and
  an API that lists the days to come as zeros (`future_buckets="zero"`): no day is lost.
- The same schedule with `lookback_days = 0` must end with rows that differ (late data), so the
  comparison is shown to see it. The three simulations run at once, each with its own sandbox,
  the connector's today being its sandbox's (`ForkedCli`'s clock).

CI runs one fixed seed (CI_SEED); `SCHEDULED_SYNC_SEED=<seed>` replays another schedule, account
and fault plan, and `SCHEDULED_SYNC_SEED=random` draws a new one (which message a kill lands on
depends on how the connector's threads interleave, so a replay is the same plan, not the same
bytes):

    SCHEDULED_SYNC_SEED=1234 .venv/bin/python -m pytest integration_tests/test_scheduled_syncs.py -q -s
"""

from __future__ import annotations

import os
import random
import resource
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any

import pytest

from integration_tests.cli import STREAMS as CATALOG_STREAMS
from integration_tests.cli import ForkedCli
from integration_tests.test_end_to_end import config_for, dates, pk, written
from integration_tests.test_interrupted_sync import Run, read_and_kill
from integration_tests.test_ledger import as_record
from integration_tests.test_usage_picture import agent_truth, billing_truth, concurrency_truth
from ultravox_sandbox import Faults, Sandbox, generate_calls
from ultravox_sandbox.calls import MAX_DURATION_S

SEED_ENV = "SCHEDULED_SYNC_SEED"
# Opt-in, too slow for CI: a day whose first attempt meets 5xx bursts longer than the connector's
# 6 retries (2+3+5+9+17+33 s of backoff), so that it fails on them. CI's attempts fail in other,
# instant ways (a kill, a cut body, allTime refused, a Retry-After over 600 s); the exhausted
# retries themselves are test_faults.py's.
STORMS_ENV = "SCHEDULED_SYNC_STORMS"
DAYS = 90
STREAMS = tuple(CATALOG_STREAMS)  # all nine: allTime, the incremental ones, invoices and account
INCREMENTAL = tuple(name for name in STREAMS if CATALOG_STREAMS[name]["cursor_field"])
# Airbyte's attempts per sync (see Destination).
ATTEMPTS = 3
FAULT_SHARE = 0.2
# Syncs moved to just after a midnight while a call of the day before still runs.
MIDNIGHT_SYNCS = 3


@dataclass(frozen=True)
class Variant:
    """One simulation of the plan: its lookback, the sandbox's modes over the plan's, whether calls
    are deleted between syncs, and end_date: each sync's today, or this many days after the last's."""

    name: str
    lookback: int
    modes: dict[str, str] = field(default_factory=dict)
    deletions: bool = False
    days_ahead: int | None = None


VARIANTS = (
    # Empty buckets left out; agents' days and concurrency buckets listed as zeros, as the connector
    # zero-fills neither: a bucket emptied by a deletion is then listed in every stream.
    Variant(
        "lookback 2, deletions",
        2,
        {
            "empty_buckets": "omit",
            "billing_empty_days": "omit",
            "agent_empty_days": "zero",
            "concurrency_empty_buckets": "zero",
        },
        deletions=True,
    ),
    Variant("lookback 2, future end_date", 2, {"future_buckets": "zero"}, days_ahead=10),
    Variant("lookback 0", 0),
)
MAIN, FUTURE, NO_LOOKBACK = (v.name for v in VARIANTS)
# Syncs before which some calls are deleted, in the deletions run.
DELETION_SHARE = 0.5
# Small windows of parallel work: the runtime is in the ~200 attempts' starts, not in the requests.
WINDOW_DAYS, NUM_WORKERS = 30, 3
# The ledger's windows as long, read in pages of the default calls_page_size (500): a first sync's
# 30 days of about 20 calls a day are two pages.
CALLS_WINDOW_DAYS = 30


# -- the plan: one seed gives the account, the clock of every sync and every fault ---------------


@dataclass(frozen=True)
class Fault:
    """One misbehaviour of the sandbox during one attempt.

    kill: SIGKILL after `n` messages. 429: the next `n` answers, Retry-After `arg` ("0", "1" or
    "3600" seconds, "date" = an HTTP date 2 s ahead, "date+1h"). 5xx: the next `n` answers, status
    `arg`. drop: the next `n` connections closed unanswered. cut: the next `n` bodies cut in half.
    too-large: ranges over `n` days refused (400) on the paths that take dates and concurrency."""

    kind: str
    n: int
    arg: str = ""

    def __str__(self) -> str:
        if self.kind == "kill":
            return f"kill@{self.n}"
        if self.kind == "429":
            return f"429x{self.n}(Retry-After {self.arg})"
        if self.kind == "too-large":
            return f"too-large(>{self.n}d)"
        return f"{self.arg or self.kind}x{self.n}"

    @property
    def fails_the_attempt(self) -> bool:
        """Always, whatever else happens (a kill only if the sync is still running)."""
        over_limit = self.kind == "429" and self.arg in ("3600", "date+1h")
        # too-large fails nothing: windows are split, allTime's range summed from windows.
        return over_limit or self.kind == "cut"


Attempt = tuple[Fault, ...]


@dataclass
class Plan:
    seed: int
    account_seed: int
    history_start: date
    # The sandbox's answers to what nobody has seen the real API do (empty_buckets stays "zero",
    # the default: with it a sync after midnight always moves the cursor past the day before).
    modes: dict[str, str]
    clocks: list[datetime]  # the first full sync's, then one per scheduled sync
    attempts: list[list[Attempt]]  # per sync, the faults of each attempt (empty: none)
    midnight: set[int] = field(default_factory=set)  # syncs while a call of yesterday runs

    def describe(self) -> str:
        fault_days = sum(any(a) for a in self.attempts)
        modes = ", ".join(f"{k}={v}" for k, v in self.modes.items())
        return (
            f"scheduled syncs: seed {self.seed} ({SEED_ENV}={self.seed} replays it); account seed "
            f"{self.account_seed}, history from {self.history_start}, "
            f"first sync {self.clocks[0]:%Y-%m-%d %H:%M}; "
            f"{fault_days} of {len(self.clocks)} syncs with faults; syncs after midnight "
            f"{sorted(self.midnight)}; {modes}"
        )


def draw_fault(rng: random.Random, kind: str, first_sync: bool) -> Fault:
    # Waits stay small: a 429 costs its Retry-After (at least 0.5 s) + 1 s, the n-th retry of a
    # 5xx or a drop 2^(n-1) + 1 s, so bursts stay under the connector's 6 retries.
    if kind == "kill":
        # A first sync emits ~20,000 messages, a daily one ~250: some kills come too late.
        return Fault("kill", rng.randint(1, 20_000 if first_sync else 250))
    if kind == "429":
        return Fault("429", rng.randint(1, 4), rng.choice(["0", "1", "date", "date", "3600", "date+1h"]))
    if kind == "5xx":
        return Fault("5xx", rng.randint(1, 3), rng.choice(["500", "502", "503"]))
    if kind == "drop":
        return Fault("drop", rng.randint(1, 3), "drop")
    if kind == "cut":
        return Fault("cut", rng.randint(1, 3), "cut")
    # 30-day windows split to 10 days and below, a scheduled sync's 3-day ones to 2 days and 1;
    # allTime's range summed from windows as small.
    return Fault("too-large", 10 if first_sync else 2)


KINDS = ("kill", "429", "5xx", "drop", "cut", "too-large")
KIND_WEIGHTS = (3, 3, 2, 2, 2, 1)


def faults_of_a_day(rng: random.Random, first_sync: bool) -> list[Attempt]:
    kinds = set(rng.choices(KINDS, KIND_WEIGHTS, k=rng.choice((1, 1, 2))))
    first = tuple(draw_fault(rng, kind, first_sync) for kind in sorted(kinds))
    if rng.random() < 0.05:  # an outage all day: every attempt fails, the day is skipped
        outage = draw_fault(rng, "cut", first_sync)
        return [(*(f for f in first if f.kind != outage.kind), outage)] * ATTEMPTS
    later = [
        (draw_fault(rng, rng.choices(KINDS, KIND_WEIGHTS)[0], first_sync),) if rng.random() < 0.2 else ()
        for _ in range(ATTEMPTS - 1)
    ]
    return [first, *later]


def is_outage(attempts: list[Attempt]) -> bool:
    return len(attempts) == ATTEMPTS and all(any(f.fails_the_attempt for f in a) for a in attempts)


def make_plan(seed: int, storms: bool = False) -> Plan:
    rng = random.Random(seed)
    account_seed = rng.randrange(1_000_000)
    first_day = date(2024, 3, 1) + timedelta(days=rng.randrange(270))
    history_start = first_day - timedelta(days=rng.randint(340, 390))
    modes = {
        "all_time_scope": rng.choice(("range", "lifetime")),
        "agents_without_calls": rng.choice(("omit", "list")),
        "agent_empty_days": rng.choice(("omit", "zero")),
        "concurrency_empty_buckets": rng.choice(("zero", "omit")),
        "concurrency_end": rng.choice(("exclusive", "inclusive")),
        "billing_empty_days": rng.choice(("zero", "omit")),
    }
    clocks = [datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)]
    clocks[0] += timedelta(seconds=rng.randrange(86_400))
    for _ in range(DAYS):
        clocks.append(clocks[-1] + timedelta(hours=24, seconds=rng.randint(-5 * 3600, 5 * 3600)))

    # A few syncs move to just after the nearest midnight, while a call created before it still
    # runs: the day before changes after the sync read it. They stay within 12 h of where they
    # were, so the clocks stay in order.
    calls = generate_calls(
        account_seed, clocks[1].date() - timedelta(days=1), clocks[-1].date() + timedelta(days=1)
    )
    crossing = [c for c in calls if c.created.date() != c.ended.date()]
    midnight: set[int] = set()
    for index in rng.sample(range(1, DAYS), DAYS - 1):
        if index - 1 in midnight or index + 1 in midnight:
            continue  # two neighbours could move to the same midnight
        base = clocks[index]
        nearest = datetime(base.year, base.month, base.day, tzinfo=UTC)
        if base - nearest > timedelta(hours=12):
            nearest += timedelta(days=1)
        running = [c for c in crossing if c.created < nearest < c.ended - timedelta(seconds=60)]
        if running:
            call = rng.choice(running)
            clocks[index] = nearest + timedelta(
                seconds=rng.randint(1, int((call.ended - nearest).total_seconds()) - 1)
            )
            midnight.add(index)
        if len(midnight) == MIDNIGHT_SYNCS:
            break

    attempts = [faults_of_a_day(rng, i == 0) if rng.random() < FAULT_SHARE else [()] for i in range(DAYS + 1)]
    # The day after an all-day outage has no faults (it catches up), nor have the first sync after
    # midnight and the last sync (the lookback 0 run must see the one and is compared after the other).
    quiet = min(midnight, default=0)
    for day in range(1, DAYS + 1):
        if is_outage(attempts[day - 1]) or day in (quiet, DAYS):
            attempts[day] = [()]
    # Every plan has an outage followed by a day to catch up, and every kind of fault.
    if not any(is_outage(a) for a in attempts[1:DAYS]):
        day = rng.choice([d for d in range(1, DAYS - 1) if quiet not in (d, d + 1)])
        attempts[day], attempts[day + 1] = [(draw_fault(rng, "cut", False),)] * ATTEMPTS, [()]
    for kind in KINDS:
        if not any(f.kind == kind for a in attempts for f in a[0]):
            free = [d for d in range(1, DAYS) if d != quiet and not is_outage(attempts[d - 1])]
            day = rng.choice(free)
            attempts[day] = [(*attempts[day][0], draw_fault(rng, kind, False)), *attempts[day][1:]]
    if storms:  # its own generator: the rest of the plan stays the seed's
        day = random.Random(f"storm {seed}").choice([d for d in range(1, DAYS) if d != quiet])
        # 3 workers take turns: 7 answers each for the first three windows.
        attempts[day] = [(Fault("5xx", 7 * NUM_WORKERS, "503"),), *attempts[day][1:]]
    return Plan(seed, account_seed, history_start, modes, clocks, attempts, midnight)


def arm(box: Sandbox, faults: Attempt) -> int | None:
    """Switch the attempt's faults on; returns after how many messages to kill the connector."""
    settings: dict[str, Any] = {}
    kill_at = None
    box.concurrency_max_days = None
    for fault in faults:
        if fault.kind == "kill":
            kill_at = fault.n
        elif fault.kind == "429":
            now = datetime.now(UTC)  # an HTTP date is read against the machine's clock
            retry_after = {
                "date": format_datetime(now + timedelta(seconds=2), usegmt=True),
                "date+1h": format_datetime(now + timedelta(hours=1), usegmt=True),
            }.get(fault.arg, fault.arg)
            settings.update(rate_limit_first=fault.n, retry_after=retry_after)
        elif fault.kind == "5xx":
            settings.update(server_errors_first=fault.n, server_error_status=int(fault.arg))
        elif fault.kind == "drop":
            settings.update(drop_connection_first=fault.n)
        elif fault.kind == "cut":
            settings.update(malformed_json_first=fault.n)
        elif fault.kind == "too-large":
            settings.update(reject_window_days_over=fault.n)
            box.concurrency_max_days = fault.n
    box.faults = Faults(**settings)
    return kill_at


def disarm(box: Sandbox) -> None:
    box.faults = Faults()
    box.concurrency_max_days = None


# -- the destination ---------------------------------------------------------------------------


Key = tuple[Any, ...]


class Destination:
    """What Airbyte keeps of the attempts, and the state it starts the next one from:

    - Records are committed per stream up to that stream's last STATE message: a destination
      acknowledges a STATE once the records before it are persisted, and the platform saves only
      acknowledged states (Airbyte protocol, "State & Checkpointing"). What a killed or failed
      attempt emitted after a stream's last STATE is dropped (Airbyte delivers at least once, so
      it might keep some; dropping them is the case that shows a state running ahead of its
      records). A successful attempt is committed whole.
    - A failed attempt is retried from the states committed so far (Airbyte resumes from the last
      checkpoint), at most 3 attempts per sync (SYNC_JOB_MAX_ATTEMPTS, long 3 by default); then
      the sync fails and the next scheduled one starts from the same committed state.
    - Incremental streams are Append + Deduped: one row per primary key, the last committed one
      (Airbyte sorts on the cursor and keeps the latest row; every cursor here is part of its
      primary key, so the latest extracted wins).
    - allTime and invoices are Full Refresh | Overwrite: their table is replaced by the records of
      an attempt that succeeded (the platform swaps the new table in only at the end of a
      successful sync).
    - account is Full Refresh | Append: the rows of each successful sync are added. (Airbyte may
      also keep the row of a failed attempt that the destination committed; every attempt of a
      sync reads the sandbox at the same clock, so such a row would repeat readAt. Left out here.)
    - calls is keyed on (created, callId) rather than callId alone: the same rows (a call's
      created never changes), and the day of each key is at hand for the lookback 0 run."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, dict[str, Any]]] = {s: {} for s in INCREMENTAL}
        self.all_time: list[dict[str, Any]] = []
        self.invoices: list[dict[str, Any]] = []
        self.accounts: list[dict[str, Any]] = []
        self.state: dict[str, dict[str, Any]] = {}

    def commit(self, run: Run, succeeded: bool) -> None:
        for stream in INCREMENTAL:
            for record in run.committed[stream] + (run.pending[stream] if succeeded else []):
                self.tables[stream][table_key(stream, record)] = record
        self.state.update(run.state)
        if succeeded:
            self.all_time = run.committed["allTime"] + run.pending["allTime"]
            self.invoices = run.committed["invoices"] + run.pending["invoices"]
            self.accounts += run.committed["account"] + run.pending["account"]

    def state_file(self) -> list[dict[str, Any]] | None:
        return list(self.state.values()) or None


def table_key(stream: str, record: dict[str, Any]) -> Key:
    return (record["created"], record["callId"]) if stream == "calls" else pk(stream, record)


# -- the truth -----------------------------------------------------------------------------------


def seconds(row: dict[str, Any]) -> float:
    return float(row["duration"].removesuffix("s"))


def truth(box: Sandbox, config: dict[str, Any]) -> tuple[dict[str, dict[Key, dict[str, Any]]], list[dict]]:
    """Every stream's records as the connector writes them, from the sandbox's answers now: the
    windowed streams up to today (their windows stop there), allTime up to today too; the
    buckets the API leaves out as the connector writes them (`written`, `billing_truth`)."""
    start, end = date.fromisoformat(config["start_date"]), date.fromisoformat(config["end_date"])
    until_today = min(end, box.now.date())
    windowed = written(box, dates(start, until_today))
    rows = {
        "daily": [{**r, "durationSeconds": seconds(r)} for r in windowed["daily"]],
        "hourly": [
            {**r, "durationSeconds": seconds(r), "hourStart": f"{r['date']}T{r['hour']:02d}:00:00Z"}
            for r in windowed["hourly"]
        ],
        "agentDaily": agent_truth(box, start, until_today),
        "concurrency": concurrency_truth(box, start, until_today, "hour"),
        "billingDaily": billing_truth(box, start, until_today),
        "calls": [as_record(c) for c in box.calls_truth(dates(start, until_today))],
    }
    tables = {s: {table_key(s, r): r for r in rows[s]} for s in INCREMENTAL}
    all_time = {**windowed["allTime"], "durationSeconds": seconds(windowed["allTime"])}
    return tables, [{**all_time, "fromDate": config["start_date"], "toDate": until_today.isoformat()}]


def without_empty_agent_days(table: dict[Key, dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """An agent's day of zeros says what its absence says. The sandbox's "zero" answer lists them
    only for agents with calls in the range asked, so the whole history asked at once lists more
    of them than the windows of a daily sync do."""
    return {k: r for k, r in table.items() if r["calls"] or r["billedMinutes"]}


def same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Equal, field for field and type for type (3 is not 3.0)."""
    return a == b and a is not None and all(type(a[k]) is type(b[k]) for k in a)  # type: ignore[index]


@dataclass
class Comparison:
    rows: int = 0
    equal: int = 0
    missing: int = 0  # in the truth, not in the table
    extra: int = 0  # in the table, not in the truth
    # calls rows of calls deleted since they were synced: the ledger keeps them (no tombstones).
    deleted_kept: int = 0
    examples: list[str] = field(default_factory=list)
    differing: list[tuple[str, Key]] = field(default_factory=list)

    @property
    def differs(self) -> int:
        return self.rows - self.equal


def compare(
    destination: Destination, box: Sandbox, config: dict[str, Any], deleted: set[str] | None = None
) -> Comparison:
    """Every incremental table row for row, allTime, invoices, and account's last row. A call of
    `deleted` (deleted from the API after a sync listed it) may stay in the calls table: the ledger
    has no tombstones, so such a row is counted apart, not as extra; any other extra row differs."""
    tables, all_time = truth(box, config)
    found = Comparison()
    for stream in INCREMENTAL:
        held, expected = destination.tables[stream], tables[stream]
        if stream == "agentDaily":
            held, expected = without_empty_agent_days(held), without_empty_agent_days(expected)
        for key in [*expected, *(held.keys() - expected.keys())]:
            if stream == "calls" and key not in expected and key[1] in (deleted or set()):
                found.deleted_kept += 1
                continue
            found.rows += 1
            if same(held.get(key), expected.get(key)):
                found.equal += 1
                continue
            found.missing += key not in held
            found.extra += key not in expected
            found.differing.append((stream, key))
            if len(found.examples) < 5:
                found.examples.append(f"{stream} {key}: table {held.get(key)} != truth {expected.get(key)}")
    found.rows += 1
    if len(destination.all_time) == 1 and same(destination.all_time[0], all_time[0]):
        found.equal += 1
    else:
        found.examples.append(f"allTime: table {destination.all_time} != truth {all_time}")
        found.differing.append(("allTime", ()))
    # invoices: overwritten by each successful sync, the bill as the API lists it now.
    invoices = [{k: v for k, v in i.items() if k != "invoiceUrl"} for i in box.invoices_truth()]
    found.rows += 1
    if destination.invoices == invoices:
        found.equal += 1
    else:
        found.examples.append(f"invoices: table {destination.invoices} != truth {invoices}")
        found.differing.append(("invoices", ()))
    # account: appended; its last row is the account at this sync's clock.
    account = box.account_truth()
    expected_account = {
        **{k: v for k, v in account.items() if k != "billingUrl" and v is not None},
        "freeTimeUsedSeconds": float(account["freeTimeUsed"].removesuffix("s")),
        "freeTimeRemainingSeconds": float(account["freeTimeRemaining"].removesuffix("s")),
        "readAt": box.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    found.rows += 1
    if destination.accounts and destination.accounts[-1] == expected_account:
        found.equal += 1
    else:
        found.examples.append(f"account: last row {destination.accounts[-1:]} != truth {expected_account}")
        found.differing.append(("account", ()))
    return found


# -- the simulation ------------------------------------------------------------------------------


@dataclass
class Day:
    index: int
    clock: datetime
    outcomes: list[str]  # per attempt: ok, killed, failed (and the first error)
    faults: list[Attempt]
    requests: int
    records: int
    seconds: float
    comparison: Comparison | None  # None: not compared, or the sync failed three times

    @property
    def succeeded(self) -> bool:
        return self.outcomes[-1] == "ok"


@dataclass
class Simulation:
    variant: Variant
    days: list[Day] = field(default_factory=list)
    failure: str | None = None
    seconds: float = 0.0
    deleted: set[str] = field(default_factory=set)  # calls deleted between syncs
    emptied: set[tuple[str, ...]] = field(default_factory=set)  # days and (day, hour)s left without calls
    destination: Destination | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the last sync's


def summary(plan: Plan, name: str, day: Day) -> str:
    shown = [" + ".join(map(str, a)) or "-" for a in day.faults]
    if day.comparison is not None:
        rows = f"{day.comparison.equal}/{day.comparison.rows}"
    else:
        rows = "not compared" + ("" if day.succeeded else " (the sync failed 3 times: skipped)")
    when = f"{day.clock:%Y-%m-%d %H:%M}{' (after midnight)' if day.index in plan.midnight else ''}"
    return (
        f"[{name}] {'first sync' if day.index == 0 else f'day {day.index:2d}'} {when}: "
        f"attempts {len(day.outcomes)} ({', '.join(day.outcomes)}); faults {' | '.join(shown)}; "
        f"requests {day.requests}; records {day.records}; rows equal {rows}; {day.seconds:.1f} s"
    )


def sync_one_day(
    plan: Plan,
    box: Sandbox,
    destination: Destination,
    config: dict[str, Any],
    index: int,
    check: bool,
    deleted: set[str] | None = None,
) -> Day:
    """Airbyte's job for one scheduled sync: up to 3 attempts, each a process of its own; then,
    if it succeeded and `check` says so, the destination compared with the truth."""
    started, requests_before, records, outcomes, used = time.monotonic(), box.request_count, 0, [], []
    for faults in plan.attempts[index] + [()] * (ATTEMPTS - len(plan.attempts[index])):
        kill_at = arm(box, faults)
        try:
            run = read_and_kill(
                config,
                destination.state_file(),
                None,
                STREAMS,
                watch=lambda r, at=kill_at: at is not None and r.messages >= at,
                # A storm's backoff alone is 69 s; anything else ends in seconds.
                # A 5xx storm outlasts the retries; a range refused over 2 days sums allTime from
                # some 200 windows, one after another.
                timeout=180
                if any((f.kind == "5xx" and f.n > 6) or f.kind == "too-large" for f in faults)
                else 60,
                # The connector's today is the sandbox's.
                start=partial(ForkedCli, clock=box.now),
            )
        finally:
            disarm(box)
        if run.killed:
            # The killed process's last requests may still be answered by the sandbox's threads;
            # let them finish before the next attempt's faults are armed, or they take its faults.
            time.sleep(1.0)
        assert not run.timed_out, f"attempt {len(outcomes) + 1} hung; faults {faults}"
        succeeded = run.returncode == 0 and not run.errors and not run.killed
        # A failure the connector reports is an error TRACE and a non-zero exit, never silence.
        assert succeeded or run.killed or (run.errors and run.returncode != 0), (run.returncode, run.errors)
        destination.commit(run, succeeded)
        records += run.records
        used.append(faults)
        first_error = run.errors[0]["message"][:80] if run.errors else ""
        outcomes.append("ok" if succeeded else "killed" if run.killed else f"failed: {first_error}")
        if any(f.fails_the_attempt for f in faults):
            sent = [(r.path, r.status) for r in box.requests[requests_before:]]
            assert not succeeded, f"attempt {len(outcomes)} succeeded despite {faults}: requests {sent}"
        if succeeded:
            break
    requests, seconds = box.request_count - requests_before, time.monotonic() - started
    day = Day(index, box.now, outcomes, used, requests, records, seconds, comparison=None)
    if check and day.succeeded:
        day.comparison = compare(destination, box, config, deleted)
    return day


def delete_recent_calls(
    box: Sandbox, rng: random.Random, since: date
) -> tuple[set[str], set[tuple[str, ...]]]:
    """Deletes some calls created from `since` (the first day the next sync reads again) to now:
    a few calls, an hour's or a day's. Each agent with a call there keeps one, so the agents'
    zero days list its emptied days (the connector does not zero-fill agentDaily). Returns how
    ids of the calls that went, and the days and (day, hour)s they left without calls."""
    recent = [c for c in box.calls if since <= c.created.date() and c.created <= box.now]
    if not recent:
        return set(), set()
    kind, pick = rng.choice(("calls", "hour", "day")), rng.choice(recent)
    chosen = {
        "calls": rng.sample(recent, min(len(recent), rng.randint(1, 3))),
        "hour": [
            c
            for c in recent
            if (c.created.date(), c.created.hour) == (pick.created.date(), pick.created.hour)
        ],
        "day": [c for c in recent if c.created.date() == pick.created.date()],
    }[kind]
    kept = {c.agent_id for c in recent if c not in chosen}
    for agent in {c.agent_id for c in chosen} - kept - {None}:
        chosen.remove(next(c for c in chosen if c.agent_id == agent))
    box.delete_calls(c.call_id for c in chosen)
    left = [c for c in box.calls if since <= c.created.date() and c.created <= box.now]

    def buckets(calls: list[Any]) -> set[tuple[str, ...]]:
        days = {(c.created.date().isoformat(),) for c in calls}
        return days | {(c.created.date().isoformat(), str(c.created.hour)) for c in calls}

    return {c.call_id for c in chosen}, buckets(chosen) - buckets(left)


def simulate(plan: Plan, variant: Variant, stop: threading.Event) -> Simulation:
    sim = Simulation(variant)
    rng = random.Random(f"deletions {plan.seed}")
    started = time.monotonic()
    try:
        with Sandbox(
            seed=plan.account_seed,
            history_start=plan.history_start,
            now=plan.clocks[0],
            **{**plan.modes, **variant.modes},
        ) as box:
            sim.destination = destination = Destination()
            for index, clock in enumerate(plan.clocks):
                if stop.is_set():
                    sim.failure = "stopped: another simulation failed"
                    break
                if variant.deletions and index and rng.random() < DELETION_SHARE:
                    # The next sync reads again from (its state's day <= the last sync's day) - lookback.
                    since = plan.clocks[index - 1].date() - timedelta(days=variant.lookback)
                    box.now = max(box.now, clock - timedelta(hours=rng.uniform(1, 12)))
                    deleted, emptied = delete_recent_calls(box, rng, since)
                    sim.deleted |= deleted
                    sim.emptied |= emptied
                box.now = clock  # calls arrive, running calls end
                # The sandbox's clock is not the machine's: end_date is its today, or a fixed day ahead.
                ahead = variant.days_ahead
                sim.config = config = config_for(
                    box,
                    plan.history_start,
                    clock.date() if ahead is None else plan.clocks[-1].date() + timedelta(days=ahead),
                    lookback_days=variant.lookback,
                    window_days=WINDOW_DAYS,
                    num_workers=NUM_WORKERS,
                    calls_window_days=CALLS_WINDOW_DAYS,
                )
                # Without lookback only the end counts: compared after the last day, not each one.
                day = sync_one_day(
                    plan, box, destination, config, index, variant.lookback > 0 or index == DAYS, sim.deleted
                )
                sim.days.append(day)
                print(summary(plan, variant.name, day), flush=True)
                if variant.lookback and day.comparison is not None and day.comparison.differs:
                    sim.failure = (
                        f"after {'the first sync' if index == 0 else f'day {index}'} "
                        f"({clock:%Y-%m-%d %H:%M}), "
                        f"{day.comparison.differs} of {day.comparison.rows} rows differ from the truth: "
                        + "; ".join(day.comparison.examples)
                    )
                    stop.set()
                    break
    except Exception:
        sim.failure = traceback.format_exc()
        stop.set()
    sim.seconds = time.monotonic() - started
    return sim


# CI replays one fixed schedule, so its result depends on the code alone; SCHEDULED_SYNC_SEED=<n>
# replays another, SCHEDULED_SYNC_SEED=random draws a new one (and prints it).
CI_SEED = 3730880459


def seed_from_env() -> int:
    value = os.environ.get(SEED_ENV)
    if value == "random":
        return random.SystemRandom().randrange(2**32)
    return int(value) if value else CI_SEED


@pytest.fixture(scope="module")
def simulations() -> Iterator[tuple[Plan, dict[str, Simulation]]]:
    plan = make_plan(seed_from_env(), storms=os.environ.get(STORMS_ENV) == "1")
    print("\n" + plan.describe(), flush=True)
    stop = threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(len(VARIANTS)) as pool:
        futures = {v.name: pool.submit(simulate, plan, v, stop) for v in VARIANTS}
        results = {name: future.result() for name, future in futures.items()}
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"scheduled syncs: seed {plan.seed}, the simulations in {time.monotonic() - started:.0f} s ("
        + ", ".join(f"{name}: {sim.seconds:.0f} s" for name, sim in results.items())
        + f"); {sum(len(d.outcomes) for sim in results.values() for d in sim.days)} attempts; "
        f"CPU {own.ru_utime + own.ru_stime:.0f} s in this process",
        flush=True,
    )
    yield plan, results


# -- the tests -----------------------------------------------------------------------------------


def failures(plan: Plan, results: dict[str, Simulation]) -> str:
    """Every simulation's failure: one that stops the others leaves them "stopped"."""
    found = "; ".join(f"[{name}] {sim.failure}" for name, sim in results.items() if sim.failure)
    return f"seed {plan.seed} ({SEED_ENV}={plan.seed}): {found}"


def test_ninety_days_of_scheduled_syncs_never_drift_from_the_truth(simulations) -> None:
    """Also when the API leaves empty buckets out and calls of the days read again are deleted."""
    plan, results = simulations
    sim = results[MAIN]
    assert sim.failure is None, failures(plan, results)
    assert [d.index for d in sim.days] == list(range(DAYS + 1))
    succeeded = [d for d in sim.days if d.succeeded]
    assert all(d.comparison is not None and d.comparison.differs == 0 for d in succeeded)
    # The faults happened and Airbyte's rules were exercised: attempts that failed or were
    # killed, then retried, and a day skipped after three failures whose next day caught up.
    outcomes = [o for d in sim.days for o in d.outcomes]
    assert any(o == "killed" for o in outcomes), f"seed {plan.seed}: no kill landed"
    assert any(o.startswith("failed") for o in outcomes), f"seed {plan.seed}: no attempt failed"
    skipped = [d.index for d in sim.days if not d.succeeded]
    assert skipped, f"seed {plan.seed}: no day was skipped"
    assert any(sim.days[i + 1].succeeded for i in skipped if i < DAYS)
    # Syncs after midnight, while a call of the day before ran, were checked like the others.
    assert any(sim.days[i].succeeded for i in plan.midnight)
    # Deletions left days and hours without calls, which the API then left out.
    emptied_days = {b for b in sim.emptied if len(b) == 1}
    assert emptied_days and len(sim.emptied) > len(emptied_days), f"seed {plan.seed}: {sim.emptied}"
    hours = len(sim.emptied) - len(emptied_days)
    # The ledger kept the rows of deleted calls it had synced (compare() counts an extra calls row
    # apart only if its call was deleted: any other differs).
    kept = [d.comparison.deleted_kept for d in succeeded if d.comparison is not None]
    assert max(kept) > 0, f"seed {plan.seed}: no deleted call was in the ledger"
    assert sim.destination is not None
    # account: one row per successful sync, invoices the bill of the last one.
    assert len(sim.destination.accounts) == len(succeeded)
    print(
        f"[{MAIN}] {len(sim.deleted)} calls deleted ({max(kept)} kept in the ledger), "
        f"{len(emptied_days)} days and {hours} hours emptied"
    )


def test_a_future_end_date_loses_no_day(simulations) -> None:
    """end_date ten days after the last sync, an API that lists the days to come as zeros: every
    sync's tables equal the truth up to its today, and the last one's hold no day after it."""
    plan, results = simulations
    sim = results[FUTURE]
    assert sim.failure is None, failures(plan, results)
    assert [d.index for d in sim.days] == list(range(DAYS + 1))
    assert all(d.comparison is not None and d.comparison.differs == 0 for d in sim.days if d.succeeded)
    last_day = plan.clocks[-1].date().isoformat()
    assert sim.config["end_date"] == (plan.clocks[-1].date() + timedelta(days=10)).isoformat()
    assert sim.destination is not None
    assert max(key[0] for key in sim.destination.tables["daily"]) == last_day
    assert max(key[0] for key in sim.destination.tables["hourly"]) == last_day
    # allTime covers the range up to the last sync's today, not the end_date still to come.
    assert sim.destination.all_time[0]["toDate"] == last_day


def test_without_lookback_the_same_schedule_misses_late_data(simulations) -> None:
    """lookback_days 0: a sync within 30 minutes after a midnight moves the cursor to the new day
    while a call of the day before may still run; that day is never read again and keeps the
    figures of that moment. So the run must end with stale rows, and only those: no row missing
    or extra, no other day, no hour but 23, and never concurrency (its buckets before now are
    complete) or allTime (a full refresh)."""
    plan, results = simulations
    sim = results[NO_LOOKBACK]
    assert sim.failure is None, failures(plan, results)
    last = sim.days[-1]
    assert last.index == DAYS and last.succeeded and last.comparison is not None
    found = last.comparison
    assert (found.missing, found.extra) == (0, 0), f"seed {plan.seed}: {found.examples}"
    assert found.differs > 0, f"seed {plan.seed}: lookback_days 0 matched the truth"
    read_too_early = {
        (c - timedelta(days=1)).date().isoformat()
        for c in plan.clocks
        if c - c.replace(hour=0, minute=0, second=0, microsecond=0) < timedelta(seconds=MAX_DURATION_S)
    }

    def late(stream: str, key: Key) -> bool:
        if stream == "hourly":
            return key[0] in read_too_early and key[1] == 23
        if stream == "calls":  # (created, callId): a call still running when its day was last read
            return key[0][:10] in read_too_early
        date_of = {"daily": 0, "agentDaily": 1, "billingDaily": 0}.get(stream)
        return date_of is not None and key[date_of] in read_too_early

    assert [d for d in found.differing if not late(*d)] == [], f"seed {plan.seed}: {found.examples}"
    print(f"[{NO_LOOKBACK}] ends with {found.differs} stale rows: {sorted(found.differing)}")
