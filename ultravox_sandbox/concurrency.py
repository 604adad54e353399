"""Ground truth of `GET /api/accounts/me/usage/concurrency`, from the one call log.

Query: `bucket` = minute (default) | 5min | hour | day; `start`, `end` date-times (a date alone is
that day's midnight UTC, an offset-less time is UTC). Defaults: end = now, start = end - 24 h.
Call filters (agentIds, ...) do not apply here and, like any unknown parameter, are ignored.
Body: `{"timeSeries": [{"timestamp", "maxTotalCalls", "maxJoinedCalls", "avgTotalCalls",
"avgJoinedCalls"}]}`, ordered by timestamp, which is the bucket's start as RFC 3339 UTC
(`2025-03-04T15:54:00Z`).

Definitions, all in whole microseconds:

- A call is running on the half-open interval [created, stop) with stop = created + duration, or
  stop = now for a call still running at `now`. Calls created after `now` do not exist yet. Error
  calls count like any other; joined figures count only calls with `joined` true.
- N(t) = the number of calls running at instant t, so a call ending at t and one starting at t
  never overlap.
- Buckets are aligned in UTC: whole minutes, multiples of 5 minutes past the hour, whole hours,
  midnights. The first bucket is the one containing `start`. A bucket starting at B is listed when
  B < end ("exclusive" end) or B <= end ("inclusive"); when B < now (the bucket containing now is
  listed, partial, unless now is exactly its start); and, with a history limit of H days, when
  B >= now - H days. Buckets starting before that limit are left out.
- A bucket's window is [B, W) with W = min(B + size, now): buckets never extend past now.
- max = the largest N(t) for t in [B, W). N only rises at a call's start, so this is the largest
  of N(B) and N(created) over the calls created inside (B, W).
- avg = (integral of N(t) dt over [B, W)) / (W - B) = (sum over calls of the length of
  [created, stop) intersected with [B, W)) / (W - B), an exact ratio of integers as a double.
- "zero" empty buckets: every bucket in range is listed, those no call overlaps as 0 / 0.0;
  "omit": only buckets that some call overlaps (a positive-length overlap) are listed.
- A maximum range of M days answers 400 `{"detail": "Date range too large ..."}` when
  end - start > M days (as requested or defaulted, before any clipping to now or history).
- `start` after `end` is a 400; `start` in the future gives an empty series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .calls import MAX_DURATION_S, Call
from .usage import SandboxBadRequest, _last, _parse_datetime

BUCKET_SECONDS = {"minute": 60, "5min": 300, "hour": 3600, "day": 86400}
CONCURRENCY_EMPTY_BUCKET_MODES = ("zero", "omit")
CONCURRENCY_END_MODES = ("exclusive", "inclusive")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def _stamp(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%SZ")


def concurrency(
    calls: Sequence[Call],
    params: dict[str, list[str]],
    now: datetime,
    empty_buckets: str = "zero",
    end_mode: str = "exclusive",
    max_range_days: float | None = None,
    history_days: float | None = None,
) -> dict[str, Any]:
    """The `ConcurrencyResponse` body for `params` at `now`; `calls` sorted by `created`."""
    if empty_buckets not in CONCURRENCY_EMPTY_BUCKET_MODES:
        raise ValueError(f"empty_buckets must be one of {CONCURRENCY_EMPTY_BUCKET_MODES}")
    if end_mode not in CONCURRENCY_END_MODES:
        raise ValueError(f"end_mode must be one of {CONCURRENCY_END_MODES}")
    now = now.astimezone(UTC)
    bucket = _last(params, "bucket")
    if bucket is None:
        bucket = "minute"
    elif bucket not in BUCKET_SECONDS:
        raise SandboxBadRequest(f'bucket: "{bucket}" is not a valid choice.')
    raw_end, raw_start = _last(params, "end"), _last(params, "start")
    end = now if raw_end is None else _parse_datetime("end", raw_end, end_of_day=False)
    start = end - timedelta(hours=24) if raw_start is None else _parse_datetime("start", raw_start, False)
    if start > end:
        raise SandboxBadRequest("start: must not be after end.")
    if max_range_days is not None and end - start > timedelta(days=max_range_days):
        raise SandboxBadRequest(
            f"Date range too large: start and end may be at most {max_range_days:g} days apart."
        )

    size = BUCKET_SECONDS[bucket] * 1_000_000
    now_us = _us(now)
    first = _us(start) // size * size
    if history_days is not None:
        limit = now_us - round(history_days * 86_400_000_000)
        first = max(first, -(-limit // size) * size)  # the first aligned start >= limit
    # Bucket starts B run from `first` while B < stop_before.
    stop_before = min(_us(end) + (1 if end_mode == "inclusive" else 0), now_us)
    n_buckets = max(0, -(-(stop_before - first) // size))
    if n_buckets == 0:
        return {"timeSeries": []}
    span_end = min(first + n_buckets * size, now_us)  # the last window's end

    # Per bucket: the (created, stop, joined) intervals overlapping it and the summed overlaps.
    members: dict[int, list[tuple[int, int, bool]]] = {}
    overlap_total: dict[int, int] = {}
    overlap_joined: dict[int, int] = {}
    lo = _EPOCH + timedelta(microseconds=first) - timedelta(seconds=MAX_DURATION_S)
    for call in calls[bisect_left(calls, lo, key=lambda c: c.created) :]:
        s = _us(call.created)
        if s >= span_end:
            break
        e = min(_us(call.ended), now_us)
        if e <= first or e <= s:
            continue
        b = max(first, s // size * size)
        while b < e and b < span_end:
            w = min(b + size, now_us)
            part = min(e, w) - max(s, b)  # > 0: e and w both lie after both s and b
            members.setdefault(b, []).append((s, e, call.joined))
            overlap_total[b] = overlap_total.get(b, 0) + part
            if call.joined:
                overlap_joined[b] = overlap_joined.get(b, 0) + part
            b += size

    series = []
    for i in range(n_buckets):
        b = first + i * size
        inside = members.get(b)
        if not inside and empty_buckets == "omit":
            continue
        w = min(b + size, now_us)
        series.append(
            {
                "timestamp": _stamp(b),
                "maxTotalCalls": _peak(inside or [], b, joined_only=False),
                "maxJoinedCalls": _peak(inside or [], b, joined_only=True),
                "avgTotalCalls": overlap_total.get(b, 0) / (w - b),
                "avgJoinedCalls": overlap_joined.get(b, 0) / (w - b),
            }
        )
    return {"timeSeries": series}


def _peak(intervals: list[tuple[int, int, bool]], window_start: int, joined_only: bool) -> int:
    chosen = [(s, e) for s, e, joined in intervals if joined or not joined_only]
    instants = [window_start] + [s for s, _ in chosen if s > window_start]
    return max((sum(s <= t < e for s, e in chosen) for t in instants), default=0)
