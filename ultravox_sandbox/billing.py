"""Ground truth of `GET /api/accounts/me/billing/usage`, from the one call log.

Query: `fromDate`, `toDate`, dates `YYYY-MM-DD` (UTC); fromDate inclusive, toDate EXCLUSIVE.
Defaults: fromDate = the 1st of the current month (the start of the billing cycle, taken to be
the calendar month), toDate = tomorrow (so today is covered). 400 `{"detail": "..."}` when a date
is malformed, when toDate <= fromDate, and when toDate is more than 90 days after fromDate (also
for defaulted dates). Call filters are ignored.

Body: `{"dailyUsage": [{"date", "minutes", "sipMinutes"}], "totalMinutes", "totalSipMinutes"}`.
`minutes` = billed minutes, at `now`, of the calls created that UTC day (a running call is not
billed yet: 0); `sipMinutes` = the part of them from SIP calls. Totals are over the whole range.
Days after today are never listed unless `future_days` is "zero". `empty_days`: "zero" lists
every day from fromDate to the earlier of toDate - 1 and today, days without billed minutes as
0.0; "omit" lists only days with billed minutes (minutes > 0, or < 0 on a credit day of the
Sandbox's odd_values). `future_days`: "omit" lists no day after today; "zero" lists every requested
day after today, as 0.0.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .calls import Call
from .usage import _DATE_RE, SandboxBadRequest, _last, call_state

BILLING_EMPTY_DAY_MODES = ("zero", "omit")
BILLING_FUTURE_DAY_MODES = ("omit", "zero")
MAX_BILLING_DAYS = 90


def _parse_date(name: str, value: str) -> date:
    try:
        if _DATE_RE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise SandboxBadRequest(f"{name}: Date has wrong format. Use one of these formats instead: YYYY-MM-DD.")


def billing_range(params: dict[str, list[str]], now: datetime) -> tuple[date, date]:
    """(fromDate, toDate) as the server takes them, toDate exclusive; raises SandboxBadRequest."""
    today = now.astimezone(UTC).date()
    raw_from, raw_to = _last(params, "fromDate"), _last(params, "toDate")
    from_day = today.replace(day=1) if raw_from is None else _parse_date("fromDate", raw_from)
    to_day = today + timedelta(days=1) if raw_to is None else _parse_date("toDate", raw_to)
    if to_day <= from_day:
        raise SandboxBadRequest("toDate: must be after fromDate.")
    if (to_day - from_day).days > MAX_BILLING_DAYS:
        raise SandboxBadRequest(f"toDate: must be at most {MAX_BILLING_DAYS} days after fromDate.")
    return from_day, to_day


def billing_usage(
    calls: Sequence[Call],
    params: dict[str, list[str]],
    now: datetime,
    empty_days: str = "zero",
    future_days: str = "omit",
) -> dict[str, Any]:
    """The `UsageResponse` body for `params` at `now`; `calls` sorted by `created`."""
    if empty_days not in BILLING_EMPTY_DAY_MODES:
        raise ValueError(f"empty_days must be one of {BILLING_EMPTY_DAY_MODES}")
    if future_days not in BILLING_FUTURE_DAY_MODES:
        raise ValueError(f"future_days must be one of {BILLING_FUTURE_DAY_MODES}")
    now = now.astimezone(UTC)
    from_day, to_day = billing_range(params, now)
    lo = datetime.combine(from_day, time(0), UTC)
    hi = datetime.combine(to_day, time(0), UTC)
    days: dict[date, list[float]] = {}
    if empty_days == "zero":
        day = from_day
        while day < to_day and day <= now.date():
            days[day] = [0.0, 0.0]
            day += timedelta(days=1)
    if future_days == "zero":
        day = max(from_day, now.date() + timedelta(days=1))
        while day < to_day:
            days[day] = [0.0, 0.0]
            day += timedelta(days=1)
    total = sip = 0.0
    start = bisect_left(calls, lo, key=lambda c: c.created)
    stop = bisect_right(calls, now, key=lambda c: c.created)
    for call in calls[start:stop]:
        if call.created >= hi:
            break
        billed = call_state(call, now).billed_minutes
        if not billed:
            continue
        row = days.setdefault(call.created.date(), [0.0, 0.0])
        row[0] += billed
        total += billed
        if call.sip:
            row[1] += billed
            sip += billed
    return {
        "dailyUsage": [
            {"date": d.isoformat(), "minutes": float(round(m, 6)), "sipMinutes": float(round(s, 6))}
            for d, (m, s) in sorted(days.items())
        ],
        "totalMinutes": float(round(total, 6)),
        "totalSipMinutes": float(round(sip, 6)),
    }
