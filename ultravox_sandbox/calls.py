"""A deterministic synthetic call log for the sandbox."""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

AGENT_IDS: tuple[str, ...] = (
    "0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01",
    "1c7a8d2f-3b68-4e2b-8b52-6d1f9a4e3b02",
    "2d8b9e3a-4c79-4f3c-9c63-7e2a0b5f4c03",
    "3e9caf4b-5d8a-4a4d-8d74-8f3b1c6a5d04",
    "4fadb05c-6e9b-4b5e-9e85-9a4c2d7b6e05",
)
# Uneven weights so per-agent filters give visibly different figures.
AGENT_WEIGHTS: tuple[float, ...] = (0.35, 0.25, 0.2, 0.15, 0.05)
# An agent of the account that never takes a call (listed by /agents/usage only in its "list" mode).
IDLE_AGENT_ID = "5abec16d-7fac-4c6f-8f96-ab5d3e8c7f06"
# Every agent of the account and its name; the names sort neither like the ids nor like the weights.
AGENT_NAMES: dict[str, str] = {
    AGENT_IDS[0]: "Reception",
    AGENT_IDS[1]: "Billing Support",
    AGENT_IDS[2]: "Appointments",
    AGENT_IDS[3]: "Returns & Refunds",
    AGENT_IDS[4]: "After-hours Line",
    IDLE_AGENT_ID: "Outbound Survey (draft)",
}
# `odd_values`: values the published schema allows and the default log never shows. This agent is
# named "" (AgentBasic.name has no minLength), and every Sunday this one gets a credit: a call of
# no duration whose billed minutes are negative, more than the day's other calls were billed, so
# that the day's billedMinutes (/usage/calls, /agents/usage) and minutes (/billing/usage) are < 0.
UNNAMED_AGENT_ID = AGENT_IDS[4]
CREDITED_AGENT_ID = AGENT_IDS[0]
CREDIT_MARGIN_MINUTES = 30.0

# Shares of calls created without an agent, and of SIP calls. Both are decided by a hash of the
# call id (see `_hashed_share`), so neither draws from the log's RNG nor changes any other attribute.
AGENTLESS_SHARE = 0.04
SIP_SHARE = 0.25
# Each customer and its share of calls: those calls' metadata also holds {"customer": name}, beside
# any campaign/tier pair; the other calls name none. Chosen by a hash of the call id too, so the RNG
# stream and every other attribute stay as they were before customers existed.
CUSTOMERS: tuple[tuple[str, float], ...] = (
    ("Acme Dental", 0.3),
    ("Globex Logistics", 0.2),
    ("Initech", 0.1),
    ("Umbrella Health", 0.05),
)
# No call lasts longer; lets the concurrency endpoint look back only this far for running calls.
MAX_DURATION_S = 1800.0
VOICE_IDS: tuple[str, ...] = (
    "9a1e2b3c-4d5e-4f60-8a71-b2c3d4e5f601",
    "9b2f3c4d-5e6f-4a71-9b82-c3d4e5f6a702",
    "9c3a4d5e-6f7a-4b82-8c93-d4e5f6a7b803",
)
VOICE_WEIGHTS: tuple[float, ...] = (0.6, 0.3, 0.1)

_FIRST_NAMES = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Julia")
_LAST_NAMES = ("Moreno", "Okafor", "Schmidt", "Tanaka", "Novak", "Silva", "Haddad", "Lindqvist")
_TOPICS = (
    "asked about billing",
    "booked an appointment",
    "reported a delivery problem",
    "wanted a refund",
    "changed the account address",
    "asked for opening hours",
    "cancelled a subscription",
)
_CAMPAIGNS = ("spring", "summer", "winter")
_TIERS = ("gold", "silver", "bronze")

DEFAULT_END = date(2025, 12, 31)
# Multi-day outages: one gap of 2-4 days somewhere in every block of this many days.
_GAP_BLOCK_DAYS = 90


@dataclass(frozen=True)
class Call:
    """One call as it will be once finished; `aggregate` derives its state at a given `now`."""

    call_id: str
    created: datetime
    duration_s: float
    joined: bool
    error: bool
    billed_minutes: float
    agent_id: str | None  # None: created without an agent; matches no agentIds filter
    voice_id: str
    metadata: dict[str, str] = field(hash=False)
    text: str
    sip: bool  # a SIP call: its billed minutes are also SIP minutes in /accounts/me/billing/usage

    @property
    def ended(self) -> datetime:
        return self.created + timedelta(seconds=self.duration_s)


def billed_minutes_for(duration_s: float, joined: bool) -> float:
    """Joined calls are billed by the started tenth of a minute; others are free."""
    if not joined:
        return 0.0
    # The epsilon keeps 6.000 s from becoming 0.2 min through float noise.
    return math.ceil(duration_s / 6 - 1e-9) / 10


def _hashed_share(call_id: str, salt: str) -> float:
    """A uniform number in [0, 1) that depends only on the call id and `salt`."""
    digest = hashlib.sha256(f"{salt}:{call_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_agentless(call_id: str) -> bool:
    return _hashed_share(call_id, "agentless") < AGENTLESS_SHARE


def is_sip(call_id: str) -> bool:
    return _hashed_share(call_id, "sip") < SIP_SHARE


def customer_of(call_id: str) -> str | None:
    """The customer a call's metadata names, if any (see CUSTOMERS)."""
    share, bound = _hashed_share(call_id, "customer"), 0.0
    for name, part in CUSTOMERS:
        bound += part
        if share < bound:
            return name
    return None


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 500:  # exp(-lam) underflows past ~745: a big account's day, drawn from the normal approximation
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _in_gap(seed: int, day: date) -> bool:
    block, offset = divmod(day.toordinal(), _GAP_BLOCK_DAYS)
    rng = random.Random(f"gap:{seed}:{block}")
    start = rng.randrange(_GAP_BLOCK_DAYS - 4)
    return start <= offset < start + rng.randint(2, 4)


def _make_call(rng: random.Random, created: datetime, duration_s: float | None = None) -> Call:
    joined = rng.random() < 0.8
    error = rng.random() < 0.1
    if duration_s is None:
        if joined:
            # Log-normal around three minutes, clipped to 5 s .. 30 min.
            duration_s = min(MAX_DURATION_S, max(5.0, rng.lognormvariate(math.log(180), 0.9)))
        else:
            duration_s = rng.uniform(5.0, 60.0)
    duration_s = round(duration_s, 3)
    metadata: dict[str, str] = {}
    roll = rng.random()
    if roll < 0.4:
        metadata = {"campaign": rng.choice(_CAMPAIGNS), "tier": rng.choice(_TIERS)}
    elif roll < 0.55:
        metadata = {"campaign": rng.choice(_CAMPAIGNS)}
    name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
    # The draws below keep the order they had as keyword arguments of Call(...): the log's RNG
    # stream, and so every call of a seed, must not change.
    call_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    agent_id = rng.choices(AGENT_IDS, AGENT_WEIGHTS)[0]
    voice_id = rng.choices(VOICE_IDS, VOICE_WEIGHTS)[0]
    text = f"{name} {rng.choice(_TOPICS)}"
    if (customer := customer_of(call_id)) is not None:
        metadata = {**metadata, "customer": customer}
    return Call(
        call_id=call_id,
        created=created,
        duration_s=duration_s,
        joined=joined,
        error=error,
        billed_minutes=billed_minutes_for(duration_s, joined),
        agent_id=None if is_agentless(call_id) else agent_id,
        voice_id=voice_id,
        metadata=metadata,
        text=text,
        sip=is_sip(call_id),
    )


def calls_for_day(seed: int, day: date, calls_per_day: float = 20) -> list[Call]:
    """The calls created on `day`; depends only on (seed, day, rate) so the log can grow later."""
    rng = random.Random(f"day:{seed}:{day.toordinal()}")
    # A few random idle days plus occasional multi-day gaps, so empty buckets occur.
    if rng.random() < 0.03 or _in_gap(seed, day):
        return []
    rate = calls_per_day * (0.35 if day.weekday() >= 5 else 1.0)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    calls = []
    for _ in range(_poisson(rng, rate)):
        business_hours = rng.random() < 0.7  # 08:00-18:00 UTC
        ms = rng.randrange(8 * 3_600_000, 18 * 3_600_000) if business_hours else rng.randrange(86_400_000)
        calls.append(_make_call(rng, midnight + timedelta(milliseconds=ms)))
    if rng.random() < 0.5:
        # Late calls that run past midnight: their day's figures change after the day is over.
        ms = rng.randrange(23 * 3_600_000 + 40 * 60_000, 86_400_000)
        calls.append(_make_call(rng, midnight + timedelta(milliseconds=ms), rng.uniform(600, MAX_DURATION_S)))
    calls.sort(key=lambda c: c.created)
    return calls


def credit_for_day(seed: int, day: date, calls: list[Call]) -> Call:
    """The Sunday credit of `odd_values`: billed minus the day's `calls` billed, less the margin.
    Created at noon and over at once, so it is billed (negatively) from noon on and is never a
    running call (no concurrency); a SIP call, so the day's sipMinutes go negative too."""
    billed = sum(c.billed_minutes for c in calls)
    return Call(
        call_id=str(
            uuid.UUID(int=random.Random(f"credit:{seed}:{day.toordinal()}").getrandbits(128), version=4)
        ),
        created=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        duration_s=0.0,
        joined=False,
        error=False,
        billed_minutes=-float(math.ceil(billed) + CREDIT_MARGIN_MINUTES),
        agent_id=CREDITED_AGENT_ID,
        voice_id=VOICE_IDS[0],
        metadata={},
        text="Credit for an interrupted call",
        sip=True,
    )


def generate_calls(
    seed: int = 7,
    start: date = date(2023, 1, 1),
    end: date = DEFAULT_END,
    calls_per_day: float = 20,
    credits: bool = False,
) -> list[Call]:
    """All calls created from `start` to `end` (both inclusive, UTC days), sorted by `created`;
    with `credits`, a credit every Sunday (`credit_for_day`), which changes no other call."""
    calls: list[Call] = []
    day = start
    while day <= end:
        day_calls = calls_for_day(seed, day, calls_per_day)
        if credits and day.weekday() == 6:
            day_calls = sorted([*day_calls, credit_for_day(seed, day, day_calls)], key=lambda c: c.created)
        calls.extend(day_calls)
        day += timedelta(days=1)
    return calls
