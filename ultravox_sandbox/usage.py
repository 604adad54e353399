"""Ground-truth aggregation of the call log, exactly as the sandbox endpoint answers it."""

from __future__ import annotations

import re
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .calls import Call

EMPTY_BUCKET_MODES = ("zero", "omit")
FUTURE_BUCKET_MODES = ("omit", "zero")
ALL_TIME_SCOPES = ("range", "lifetime")

# Django's parse_datetime accepts roughly this; a "+" that was not percent-encoded arrives
# as a space and is rejected, as it would be by the real server.
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?", re.IGNORECASE
)
_TIME_RE = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
_DURATION_RE = re.compile(r"\d+(\.\d{1,9})?s")
_END_OF_DAY = time(23, 59, 59, 999999)

_SINGLE_PARAMS = (
    "fromDate",
    "toDate",
    "voiceId",
    "durationMin",
    "durationMax",
    "search",
    "timeOfDayStart",
    "timeOfDayEnd",
)


class SandboxBadRequest(ValueError):
    """A known query parameter has a malformed value; the server answers 400 with `detail`."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SandboxNotFound(SandboxBadRequest):
    """A refusal answered 404 instead, such as DRF's "Invalid cursor"."""

    status = 404


@dataclass(frozen=True)
class Filters:
    from_dt: datetime | None = None
    to_dt: datetime | None = None
    agent_ids: frozenset[str] | None = None
    voice_id: str | None = None
    duration_min_us: int | None = None
    duration_max_us: int | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    search: str | None = None
    time_start: time = time(0)
    time_end: time = _END_OF_DAY


def _last(params: dict[str, list[str]], name: str) -> str | None:
    # DRF's QueryDict.get returns the last value of a repeated key.
    values = params.get(name)
    return values[-1] if values else None


def _parse_datetime(name: str, value: str, end_of_day: bool) -> datetime:
    try:
        if _DATE_RE.fullmatch(value):
            day = date.fromisoformat(value)
            return datetime.combine(day, _END_OF_DAY if end_of_day else time(0), tzinfo=UTC)
        if _DATETIME_RE.fullmatch(value):
            parsed = datetime.fromisoformat(value.upper())
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        pass  # well-formed but impossible, such as month 13
    raise SandboxBadRequest(f"{name}: enter a valid date/time (got {value!r}).")


def _parse_uuid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SandboxBadRequest(f"{name}: {value!r} is not a valid UUID.") from None


def _parse_duration_us(name: str, value: str) -> int:
    if not _DURATION_RE.fullmatch(value):
        raise SandboxBadRequest(f"{name}: expected seconds such as '300s' or '12.5s' (got {value!r}).")
    whole, _, frac = value[:-1].partition(".")
    return int(whole) * 1_000_000 + int((frac + "000000000")[:9]) // 1000


def _parse_time(name: str, value: str) -> time:
    if not _TIME_RE.fullmatch(value):
        raise SandboxBadRequest(f"{name}: expected a time HH:MM:SS (got {value!r}).")
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise SandboxBadRequest(f"{name}: expected a time HH:MM:SS (got {value!r}).") from None


def parse_filters(params: dict[str, list[str]]) -> Filters:
    """Validate the known parameters; unknown names are ignored, as django-filter does."""
    raw = {name: _last(params, name) for name in _SINGLE_PARAMS}
    search = raw["search"]
    if search is not None and not search:
        raise SandboxBadRequest("search: ensure this field has at least 1 character.")
    metadata = []
    for key, values in sorted(params.items()):
        if key.startswith("metadata.") and values:
            if key == "metadata.":
                raise SandboxBadRequest("metadata: the key after 'metadata.' must not be empty.")
            metadata.append((key.removeprefix("metadata."), values[-1]))
    agent_values = params.get("agentIds") or []

    def opt(name: str, parse: Callable[[str, str], Any]) -> Any:
        return None if raw[name] is None else parse(name, raw[name])

    return Filters(
        from_dt=opt("fromDate", lambda n, v: _parse_datetime(n, v, end_of_day=False)),
        to_dt=opt("toDate", lambda n, v: _parse_datetime(n, v, end_of_day=True)),
        agent_ids=frozenset(_parse_uuid("agentIds", v) for v in agent_values) if agent_values else None,
        voice_id=opt("voiceId", _parse_uuid),
        duration_min_us=opt("durationMin", _parse_duration_us),
        duration_max_us=opt("durationMax", _parse_duration_us),
        metadata=tuple(metadata),
        search=None if search is None else search.casefold(),
        time_start=opt("timeOfDayStart", _parse_time) or time(0),
        time_end=opt("timeOfDayEnd", _parse_time) or _END_OF_DAY,
    )


def format_duration(micros: int) -> str:
    """Protobuf-JSON style: whole seconds bare, otherwise 3 or 6 fraction digits."""
    seconds, frac = divmod(micros, 1_000_000)
    if frac == 0:
        return f"{seconds}s"
    if frac % 1000 == 0:
        return f"{seconds}.{frac // 1000:03d}s"
    return f"{seconds}.{frac:06d}s"


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class CallState:
    """What a call looks like at a given `now`: running calls have no error and no bill yet."""

    call: Call
    duration_us: int
    error: bool
    billed_minutes: float


def call_state(call: Call, now: datetime) -> CallState:
    if call.ended > now:
        return CallState(call, _micros(now - call.created), False, 0.0)
    return CallState(call, round(call.duration_s * 1_000_000), call.error, call.billed_minutes)


def _matches(state: CallState, f: Filters) -> bool:
    call = state.call
    if f.agent_ids is not None and call.agent_id not in f.agent_ids:
        return False
    if f.voice_id is not None and call.voice_id != f.voice_id:
        return False
    if f.duration_min_us is not None and state.duration_us < f.duration_min_us:
        return False
    if f.duration_max_us is not None and state.duration_us > f.duration_max_us:
        return False
    if any(call.metadata.get(k) != v for k, v in f.metadata):
        return False
    if f.search is not None and f.search not in call.text.casefold():
        return False
    return f.time_start <= call.created.time() <= f.time_end


class _Stats:
    __slots__ = ("total", "errors", "joined", "duration_us", "billed")

    def __init__(self) -> None:
        self.total = self.errors = self.joined = self.duration_us = 0
        self.billed = 0.0

    def add(self, state: CallState) -> None:
        self.total += 1
        self.errors += state.error
        self.joined += state.call.joined
        self.duration_us += state.duration_us
        self.billed += state.billed_minutes

    def as_json(self) -> dict[str, Any]:
        return {
            "totalCount": self.total,
            "errorCount": self.errors,
            "duration": format_duration(self.duration_us),
            "joinedCount": self.joined,
            # float() keeps whole sums like 12.0 a JSON float; round() drops summation noise.
            "billedMinutes": float(round(self.billed, 6)),
        }


def _matching(
    calls: Sequence[Call], lo: datetime | None, hi: datetime, f: Filters, now: datetime
) -> list[CallState]:
    start = 0 if lo is None else bisect_left(calls, lo, key=lambda c: c.created)
    stop = bisect_right(calls, hi, key=lambda c: c.created)
    states = (call_state(c, now) for c in calls[start:stop])
    return [s for s in states if _matches(s, f)]


def requested_days(calls: Sequence[Call], f: Filters, now: datetime) -> list[date]:
    """The UTC days a "zero" mode lists: from fromDate's day (or the first call's) to toDate's
    day or today, whichever is earlier."""
    first_day = f.from_dt.date() if f.from_dt is not None else None
    if first_day is None and calls and calls[0].created <= now:
        first_day = calls[0].created.date()
    last_day = now.date() if f.to_dt is None else min(f.to_dt.date(), now.date())
    days = []
    day = first_day
    while day is not None and day <= last_day:
        days.append(day)
        day += timedelta(days=1)
    return days


def days_to_come(f: Filters, now: datetime) -> list[date]:
    """The requested UTC days from today on: a "zero" future_buckets lists those after today,
    and today's hours after now's."""
    if f.to_dt is None:
        return []
    first = now.date() if f.from_dt is None else max(now.date(), f.from_dt.date())
    return [first + timedelta(days=i) for i in range((f.to_dt.date() - first).days + 1)]


def matching_states(calls: Sequence[Call], f: Filters, now: datetime) -> list[CallState]:
    """The calls that exist at `now`, were created inside [fromDate, toDate] and pass `f`."""
    hi = now if f.to_dt is None else min(now, f.to_dt)
    return _matching(calls, f.from_dt, hi, f, now)


def aggregate(
    calls: Sequence[Call],
    params: dict[str, list[str]],
    now: datetime,
    empty_buckets: str = "zero",
    all_time_scope: str = "range",
    future_buckets: str = "omit",
) -> dict[str, Any]:
    """The `CallUsage` body for `params` (as `parse_qs` gives them) at instant `now`.

    `calls` must be sorted by `created`; calls created after `now` do not exist yet. With
    future_buckets "zero", every requested day after today and hour after now's is listed too,
    as zeros (an API might list the range asked for whole).
    """
    if empty_buckets not in EMPTY_BUCKET_MODES:
        raise ValueError(f"empty_buckets must be one of {EMPTY_BUCKET_MODES}")
    if future_buckets not in FUTURE_BUCKET_MODES:
        raise ValueError(f"future_buckets must be one of {FUTURE_BUCKET_MODES}")
    if all_time_scope not in ALL_TIME_SCOPES:
        raise ValueError(f"all_time_scope must be one of {ALL_TIME_SCOPES}")
    now = now.astimezone(UTC)
    f = parse_filters(params)
    in_range = matching_states(calls, f, now)

    daily: dict[date, _Stats] = {}
    hourly: dict[tuple[date, int], _Stats] = {}
    for state in in_range:
        created = state.call.created
        daily.setdefault(created.date(), _Stats()).add(state)
        hourly.setdefault((created.date(), created.hour), _Stats()).add(state)

    if empty_buckets == "zero":
        for day in requested_days(calls, f, now):
            daily.setdefault(day, _Stats())
            for hour in range(24 if day < now.date() else now.hour + 1):
                hourly.setdefault((day, hour), _Stats())
    if future_buckets == "zero":
        for day in days_to_come(f, now):
            if day > now.date():
                daily.setdefault(day, _Stats())
            for hour in range(now.hour + 1 if day == now.date() else 0, 24):
                hourly.setdefault((day, hour), _Stats())

    all_time = _Stats()
    scope = in_range if all_time_scope == "range" else _matching(calls, None, now, f, now)
    for state in scope:
        all_time.add(state)

    return {
        "allTime": all_time.as_json(),
        "daily": [{**daily[d].as_json(), "date": d.isoformat()} for d in sorted(daily)],
        "hourly": [{**hourly[k].as_json(), "date": k[0].isoformat(), "hour": k[1]} for k in sorted(hourly)],
    }
