"""A faithful local stand-in for Ultravox's usage endpoints, served from one synthetic call log.

Paths: `GET /api/accounts/me/usage/calls`, `/api/agents/usage`, `/api/accounts/me/usage/concurrency`
and `/api/accounts/me/billing/usage`; `DELETE /api/calls/{callId}`.

from datetime import UTC, datetime, timedelta
from ultravox_sandbox import Sandbox, Faults

with Sandbox(now=datetime(2025, 3, 4, 15, 30, tzinfo=UTC)) as sb:
    requests.get(sb.url + "/accounts/me/usage/calls", headers={"X-API-Key": sb.api_key})
    sb.advance(timedelta(hours=2))          # running calls end, new calls arrive
    sb.faults = Faults(rate_limit_first=2)  # the next two requests get 429
    sb.ground_truth({"fromDate": ["2025-03-01"]})  # what the server answers for those params
    sb.agent_usage_truth({"fromDate": ["2025-03-01"]})  # likewise for /agents/usage,
    sb.concurrency_truth({"bucket": ["hour"]})          # /accounts/me/usage/concurrency
    sb.billing_truth({"fromDate": ["2025-02-01"]})      # and /accounts/me/billing/usage
    sb.delete_calls([sb.calls[0].call_id])              # as DELETE /api/calls/{callId} does
"""

from .agent_usage import AGENT_EMPTY_DAY_MODES, AGENTS_WITHOUT_CALLS_MODES, agent_usage
from .billing import BILLING_EMPTY_DAY_MODES, MAX_BILLING_DAYS, billing_usage
from .calls import (
    AGENT_IDS,
    AGENT_NAMES,
    CREDITED_AGENT_ID,
    IDLE_AGENT_ID,
    UNNAMED_AGENT_ID,
    VOICE_IDS,
    Call,
    generate_calls,
    is_agentless,
    is_sip,
)
from .concurrency import BUCKET_SECONDS, CONCURRENCY_EMPTY_BUCKET_MODES, CONCURRENCY_END_MODES, concurrency
from .server import (
    AGENT_USAGE_PATH,
    BILLING_USAGE_PATH,
    CALL_PATH,
    CONCURRENCY_PATH,
    ERROR_BODY_SHAPES,
    SANDBOX_API_KEY,
    USAGE_PATH,
    Faults,
    LoggedRequest,
    Sandbox,
    error_body,
)
from .usage import FUTURE_BUCKET_MODES, SandboxBadRequest, aggregate, format_duration

__all__ = [
    "AGENTS_WITHOUT_CALLS_MODES",
    "AGENT_EMPTY_DAY_MODES",
    "AGENT_IDS",
    "AGENT_NAMES",
    "AGENT_USAGE_PATH",
    "BILLING_EMPTY_DAY_MODES",
    "BILLING_USAGE_PATH",
    "BUCKET_SECONDS",
    "CALL_PATH",
    "CONCURRENCY_EMPTY_BUCKET_MODES",
    "CONCURRENCY_END_MODES",
    "CONCURRENCY_PATH",
    "CREDITED_AGENT_ID",
    "ERROR_BODY_SHAPES",
    "FUTURE_BUCKET_MODES",
    "IDLE_AGENT_ID",
    "MAX_BILLING_DAYS",
    "SANDBOX_API_KEY",
    "UNNAMED_AGENT_ID",
    "USAGE_PATH",
    "VOICE_IDS",
    "Call",
    "Faults",
    "LoggedRequest",
    "Sandbox",
    "SandboxBadRequest",
    "agent_usage",
    "aggregate",
    "billing_usage",
    "concurrency",
    "error_body",
    "format_duration",
    "generate_calls",
    "is_agentless",
    "is_sip",
]
