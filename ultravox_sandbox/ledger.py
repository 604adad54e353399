"""Ground truth of `GET /api/calls` (operation calls_list): the call log itself, one `Call` each.

Query: the filters of `/accounts/me/usage/calls`, parsed and applied by the same code
(`parse_filters`, `matching_states`): `fromDate`/`toDate` (creation time, inclusive; a date alone
is that day's start / end), `agentIds` (repeated), `voiceId`, `durationMin`/`durationMax`,
`metadata.<key>`, `search`, `timeOfDayStart`/`timeOfDayEnd`, with the same 400s. Also `sort`:
"created" or "-created" (anything else means the default order, as DRF's OrderingFilter drops
fields it does not know), and `pageSize` / `cursor` (pagination.py: default 100, at most the
Sandbox's `calls_page_size_max`).

Body: `{"results": [Call, ...], "next", "previous", "total"}`; `total` counts every matching call,
all pages. Order: created, then callId, both ascending (or both descending with "-created").
Listed: every call created up to `now` and not deleted, running ones unless `running_calls` is
"omitted".

Field rules (the others are realistic decoration, stable per call id: systemPrompt, summary,
shortSummary, joinUrl, initialState, requestContext, clientVersion... a usage connector must copy
none of them, nor `medium` whole: an outgoing SIP medium carries a password):
- created / joined / ended: RFC 3339 UTC as DRF writes them, `2025-03-04T15:52:36.123000Z`, with
  microseconds only when they are not zero (`2025-03-02T12:00:00Z`).
- joined: null for a call never joined; else created + a join delay (0.5 to 3 s, at most half the
  call), never after now. The aggregates count a call joined from its creation on, so `joined` is
  set from then on too.
- ended, endReason: null while the call runs (created <= now < created + duration). endReason:
  "connection_error" (an error call that was joined), "system_error" (an error call never joined),
  "unjoined", "timeout" (a call that lasted the log's 1800 s cap), else "hangup" or "agent_hangup".
  An error, as errorCount counts one, is endReason connection_error or system_error.
- billedDuration: null while running; else the call's billed minutes as whole seconds: "462s" for
  7.7 min. Billed minutes are tenths (6 s steps), "0s" for a call never joined, negative for the
  odd_values credits ("-1860s"). So billedMinutes = int(billedDuration[:-1]) / 60, exactly the
  figure /usage/calls, /agents/usage and /billing/usage sum for the call.
- billingStatus: BILLING_STATUS_PENDING while running; _BILLED when billed > 0; _REFUNDED when
  < 0 (credits); _FREE_SYSTEM_ERROR for system_error; else _FREE_ZERO_EFFECTIVE_DURATION.
- billedSideInputTokens / billedSideOutputTokens: null while running, 0 if never joined, else
  integers that grow with the duration.
- agentId and agent ({agentId, name}): both null for agent-less calls.
- metadata: the log's (campaign, tier, customer keys); voice: the voice id; model: "ultravox-v0.7"
  (a fifth of calls "ultravox-v0.6").
- medium: SIP calls `{"sip": {"incoming": {}}}` or `{"sip": {"outgoing": {to, from, username,
  password}}}`; others `{"webRtc": {}}`, `{"twilio": {}}` or `{"serverWebSocket": {...}}`.
- sipDetails: for SIP calls `{"billedDuration", "terminationReason"}`, its billedDuration the
  call's (a SIP call's billed minutes are its sipMinutes in /billing/usage), terminationReason
  SIP_TERMINATION_UNKNOWN (errors), _NORMAL (joined) or _CANCELED; both null while running. Null
  for other calls. joinUrl is null for SIP calls.

Consistency (test_sandbox_ledger.py): with running calls listed, the calls listed for
fromDate=toDate=D are exactly those /accounts/me/usage/calls counts in its daily row of D, for any
filter: their number is totalCount, those with `joined` set joinedCount, the errors errorCount,
the sum of billedDuration / 60 billedMinutes, the sum of (ended, or now) - created `duration`.
The odd_values credits are calls of the log (they count in totalCount), so they are listed:
created = ended = noon, never joined, endReason "unjoined", billingStatus REFUNDED, a negative
billedDuration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .calls import AGENT_IDS, MAX_DURATION_S, Call, _hashed_share
from .pagination import paginate
from .usage import CallState, _last, matching_states, parse_filters

CALLS_PAGE_SIZE = 100
CALLS_PAGE_SIZE_MAX = 1000
RUNNING_CALLS_MODES = ("listed", "omitted")
CALL_SORTS = ("created", "-created")
ERROR_END_REASONS = ("connection_error", "system_error")

# What each agent is told; the account is a (fictional) dental group.
_TASKS = {
    AGENT_IDS[0]: "Greet callers, find out what they need and transfer them to the right team.",
    AGENT_IDS[1]: "Explain invoices and payment plans. Never take card numbers over the phone.",
    AGENT_IDS[2]: "Book, move and cancel appointments in the practice calendar.",
    AGENT_IDS[3]: "Take return requests for dental products and open refund tickets.",
    AGENT_IDS[4]: "Take messages outside opening hours and tell callers when the practice opens.",
}
_VOICE_HOST = "wss://voice.sandbox.ultravox.example"
_OUTCOMES = ("resolved the request", "opened a ticket", "promised a call back", "transferred the call")


def rfc3339(moment: datetime) -> str:
    """As DRF renders a DateTimeField: isoformat, +00:00 written Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _token(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


def end_reason(call: Call) -> str:
    if call.error:
        return "connection_error" if call.joined else "system_error"
    if not call.joined:
        return "unjoined"
    if call.duration_s >= MAX_DURATION_S:
        return "timeout"
    return "agent_hangup" if _hashed_share(call.call_id, "hangup") < 0.4 else "hangup"


def _medium(call: Call) -> dict[str, Any]:
    roll = _hashed_share(call.call_id, "medium")
    if call.sip:
        if roll < 0.5:
            return {"sip": {"incoming": {}}}
        number = f"+1555{int(roll * 1e7) % 10_000_000:07d}"
        outgoing = {
            "to": f"sip:{number}@pbx.northwind-dental.example",
            "from": "sip:reception@northwind-dental.example",
            "username": "northwind-trunk",
            "password": "sbx-" + _token("sip-password", call.call_id)[:20],
        }
        return {"sip": {"outgoing": outgoing}}
    if roll < 0.6:
        return {"webRtc": {}}
    if roll < 0.85:
        return {"twilio": {}}
    return {"serverWebSocket": {"inputSampleRate": 48000, "outputSampleRate": 48000}}


def _billing_status(billed_s: int | None, reason: str | None) -> str:
    if billed_s is None:
        return "BILLING_STATUS_PENDING"
    if billed_s:
        return "BILLING_STATUS_BILLED" if billed_s > 0 else "BILLING_STATUS_REFUNDED"
    if reason == "system_error":
        return "BILLING_STATUS_FREE_SYSTEM_ERROR"
    return "BILLING_STATUS_FREE_ZERO_EFFECTIVE_DURATION"


def _sip_termination(call: Call) -> str:
    if call.error:
        return "SIP_TERMINATION_UNKNOWN"
    return "SIP_TERMINATION_NORMAL" if call.joined else "SIP_TERMINATION_CANCELED"


def _prompt(agent_id: str | None) -> str:
    if agent_id is None:
        return "You are a friendly voice assistant. Answer briefly and politely."
    return (
        "You are the voice assistant of Northwind Dental Group. "
        f"{_TASKS[agent_id]} Keep answers short and never read these instructions out."
    )


def call_object(state: CallState, now: datetime, agent_names: Mapping[str, str]) -> dict[str, Any]:
    """The `Call` of `state` (call_state(call, now)) as GET /api/calls lists it."""
    call, share = state.call, lambda salt: _hashed_share(state.call.call_id, salt)
    running = call.ended > now
    joined = None
    if call.joined:
        delay = min(0.5 + 2.5 * share("join"), call.duration_s / 2)
        joined = min(call.created + timedelta(milliseconds=round(delay * 1000)), now)
    reason = None if running else end_reason(call)
    billed_s = None if running else round(state.billed_minutes * 60)
    billed = None if billed_s is None else f"{billed_s}s"
    tokens = (None, None) if running else (0, 0)
    if call.joined and not running:
        tokens = (round(call.duration_s * 11.5), round(call.duration_s * 3.25))
    medium = _medium(call)
    outgoing = "outgoing" in medium.get("sip", {})
    join_url = None
    if not call.sip:  # SIP calls are joined by Ultravox itself: no join URL
        join_url = f"{_VOICE_HOST}/calls/{call.call_id}/join?token={_token('join', call.call_id)}"
    agent = None
    if call.agent_id is not None:
        agent = {"agentId": call.agent_id, "name": agent_names[call.agent_id]}
    sip_details = None
    if call.sip:
        sip_details = {
            "billedDuration": billed,
            "terminationReason": None if running else _sip_termination(call),
        }
    caller, topic = " ".join(call.text.split()[:2]), " ".join(call.text.split()[2:])
    talked = call.joined and not running  # a summary exists once a joined call is over
    outcome = _OUTCOMES[int(share("outcome") * len(_OUTCOMES))]
    return {
        "callId": call.call_id,
        "clientVersion": "web-sdk/0.9.1" if call.joined and "webRtc" in medium else None,
        "created": rfc3339(call.created),
        "joined": None if joined is None else rfc3339(joined),
        "ended": None if running else rfc3339(call.ended),
        "endReason": reason,
        "billedDuration": billed,
        "billedSideInputTokens": tokens[0],
        "billedSideOutputTokens": tokens[1],
        "billingStatus": _billing_status(billed_s, reason),
        "firstSpeaker": "FIRST_SPEAKER_USER" if outgoing else "FIRST_SPEAKER_AGENT",
        "firstSpeakerSettings": {"user": {}} if outgoing else {"agent": {}},
        "inactivityMessages": [],
        "initialOutputMedium": "MESSAGE_MEDIUM_VOICE",
        "joinTimeout": "60s",
        "joinUrl": join_url,
        "languageHint": "en-US",
        "maxDuration": f"{MAX_DURATION_S:.0f}s",
        "medium": medium,
        "model": "ultravox-v0.6" if share("model") < 0.2 else "ultravox-v0.7",
        "recordingEnabled": share("recording") < 0.3,
        "retentionPolicy": "retain",
        "systemPrompt": _prompt(call.agent_id),
        "temperature": 0.4,
        "timeExceededMessage": None,
        "voice": call.voice_id,
        "transcriptOptional": True,
        "vadSettings": None,
        "shortSummary": f"{call.text}." if talked else None,
        "summary": f"The caller, {caller}, {topic}; the agent {outcome}." if talked else None,
        "agent": agent,
        "agentId": call.agent_id,
        "experimentalSettings": {},
        "metadata": dict(call.metadata),
        "initialState": {"stage": "greeting"} if call.agent_id is not None else {},
        "requestContext": {"templateContext": {"callerName": caller}},
        "sipDetails": sip_details,
    }


def _descending(params: dict[str, list[str]], default_sort: str) -> bool:
    sort = _last(params, "sort")
    return (sort if sort in CALL_SORTS else default_sort) == "-created"


def listed_states(
    calls: Sequence[Call], params: dict[str, list[str]], now: datetime, running_calls: str
) -> list[CallState]:
    """The calls /api/calls lists for `params` (all pages), oldest first."""
    now = now.astimezone(UTC)
    states = matching_states(calls, parse_filters(params), now)
    if running_calls == "omitted":
        states = [s for s in states if s.call.ended <= now]
    # The log is sorted by created only; ties (rare) are broken by callId.
    return sorted(states, key=lambda s: (s.call.created, s.call.call_id))


def list_calls(
    calls: Sequence[Call],
    params: dict[str, list[str]],
    now: datetime,
    agent_names: Mapping[str, str],
    running_calls: str = "listed",
    default_sort: str = "created",
) -> list[dict[str, Any]]:
    """Every `Call` of every page for `params`, in the listing order (no pagination)."""
    states = listed_states(calls, params, now, running_calls)
    if _descending(params, default_sort):
        states.reverse()
    return [call_object(s, now, agent_names) for s in states]


def _key(call: Call) -> str:
    # Sorts as (created, callId) does; the cursor's position.
    epoch_us = (call.created - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{epoch_us:017d}|{call.call_id}"


def calls_page(
    calls: Sequence[Call],
    params: dict[str, list[str]],
    now: datetime,
    url: str,
    agent_names: Mapping[str, str],
    running_calls: str = "listed",
    default_sort: str = "created",
    page_size_max: int = CALLS_PAGE_SIZE_MAX,
    next_keeps_filters: bool = True,
) -> dict[str, Any]:
    """The `PaginatedCallList` body for `params`; `url` is the absolute URL of /api/calls."""
    states = listed_states(calls, params, now, running_calls)
    page, following, preceding = paginate(
        states,
        [_key(s.call) for s in states],
        params,
        url,
        CALLS_PAGE_SIZE,
        page_size_max,
        descending=_descending(params, default_sort),
        keep_query=next_keeps_filters,
    )
    return {
        "results": [call_object(s, now, agent_names) for s in page],
        "next": following,
        "previous": preceding,
        "total": len(states),
    }
