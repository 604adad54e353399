"""Ground truth of `GET /api/accounts/me` (Account): the account, from the log at `now`.

- accountId, name: fixed per seed. billingUrl: a billing-portal URL carrying a token (a way into
  the account's billing: never to be synced).
- freeTimeUsed / freeTimeRemaining: durations like "1234.5s" (usage.format_duration) against a
  free allowance of FREE_TIME ("1800s"): used = the billed seconds (billedDuration) of every call
  that has ended, plus the time so far of every running call that is joined, kept within
  [0, allowance]; remaining = allowance - used. A busy log uses it all up early ("0s" left).
- hasActiveSubscription true, subscriptionTier "PRO", subscriptionCadence "monthly",
  subscriptionRenewal the first instant of next month (UTC), subscriptionExpiration and
  subscriptionScheduledUpdate null.
- activeCalls: the calls running at now (created <= now < created + duration), whether or not
  /api/calls lists running calls. allowedConcurrentCalls: the Sandbox's `allowed_concurrent_calls`
  (default 5; None gives null), a figure only: the log is never held to it. allowedVoices 10,
  allowedCorpora 5.
"""

from __future__ import annotations

import hashlib
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .calls import MAX_DURATION_S, Call
from .ledger import rfc3339
from .usage import call_state, format_duration

FREE_TIME = timedelta(minutes=30)
DEFAULT_ALLOWED_CONCURRENT_CALLS = 5
_US = timedelta(microseconds=1)


def calls_running_at(calls: Sequence[Call], now: datetime) -> list[Call]:
    """The calls running at `now`; `calls` sorted by created (no call outlasts MAX_DURATION_S)."""
    lo = bisect_left(calls, now - timedelta(seconds=MAX_DURATION_S), key=lambda c: c.created)
    hi = bisect_right(calls, now, key=lambda c: c.created)
    return [c for c in calls[lo:hi] if c.ended > now]


def free_time_used_us(calls: Sequence[Call], now: datetime) -> int:
    used = 0
    for call in calls[: bisect_right(calls, now, key=lambda c: c.created)]:
        if call.ended <= now:
            used += round(call_state(call, now).billed_minutes * 60) * 1_000_000
        elif call.joined:
            used += (now - call.created) // _US
    return min(max(used, 0), FREE_TIME // _US)


def account(
    calls: Sequence[Call],
    now: datetime,
    seed: int,
    allowed_concurrent_calls: int | None = DEFAULT_ALLOWED_CONCURRENT_CALLS,
) -> dict[str, Any]:
    """The `Account` body at `now`; `calls` sorted by `created`."""
    now = now.astimezone(UTC)
    used = free_time_used_us(calls, now)
    token = hashlib.sha256(f"billing:{seed}".encode()).hexdigest()[:24]
    first = now.date().replace(day=1)
    renewal = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=UTC)
    return {
        "accountId": str(uuid.UUID(hashlib.sha256(f"account:{seed}".encode()).hexdigest()[:32], version=4)),
        "name": "Northwind Dental Group",
        "billingUrl": f"https://billing.stripe.com/p/session/live_{token}",
        "freeTimeUsed": format_duration(used),
        "freeTimeRemaining": format_duration(FREE_TIME // _US - used),
        "hasActiveSubscription": True,
        "subscriptionTier": "PRO",
        "subscriptionCadence": "monthly",
        "subscriptionExpiration": None,
        "subscriptionScheduledUpdate": None,
        "subscriptionRenewal": rfc3339(renewal),
        "activeCalls": len(calls_running_at(calls, now)),
        "allowedConcurrentCalls": allowed_concurrent_calls,
        "allowedVoices": 10,
        "allowedCorpora": 5,
    }
