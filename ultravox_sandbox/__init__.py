"""A faithful local stand-in for Ultravox's usage endpoints, served from one synthetic call log.

Paths: `GET /api/accounts/me/usage/calls`, `/api/agents/usage`, `/api/accounts/me/usage/concurrency`
and `/api/accounts/me/billing/usage` (aggregates); `GET /api/calls` (every call, paginated),
`/api/accounts/me/billing/invoices` and `/api/accounts/me` (the ledger, consistent with the
aggregates); `DELETE /api/calls/{callId}`.

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
    sb.calls_truth({"fromDate": ["2025-03-04"]})        # every Call /api/calls lists, all pages
    sb.invoices_truth()                                 # every invoice, newest first
    sb.account_truth()                                  # the body of /accounts/me
    sb.delete_calls([sb.calls[0].call_id])              # as DELETE /api/calls/{callId} does
"""

from .account import FREE_TIME
from .agent_usage import AGENT_EMPTY_DAY_MODES, AGENTS_WITHOUT_CALLS_MODES, agent_usage
from .billing import BILLING_EMPTY_DAY_MODES, MAX_BILLING_DAYS, billing_usage
from .calls import (
    AGENT_IDS,
    AGENT_NAMES,
    CREDITED_AGENT_ID,
    CUSTOMERS,
    IDLE_AGENT_ID,
    UNNAMED_AGENT_ID,
    VOICE_IDS,
    Call,
    generate_calls,
    is_agentless,
    is_sip,
)
from .concurrency import BUCKET_SECONDS, CONCURRENCY_EMPTY_BUCKET_MODES, CONCURRENCY_END_MODES, concurrency
from .invoices import INVOICE_AMOUNT_UNITS, INVOICES_PAGE_SIZE, INVOICES_PAGE_SIZE_MAX, PRICE_PER_MINUTE_USD
from .ledger import CALL_SORTS, CALLS_PAGE_SIZE, CALLS_PAGE_SIZE_MAX, ERROR_END_REASONS, RUNNING_CALLS_MODES
from .server import (
    ACCOUNT_PATH,
    AGENT_USAGE_PATH,
    BILLING_USAGE_PATH,
    CALL_PATH,
    CALLS_PATH,
    CONCURRENCY_PATH,
    ERROR_BODY_SHAPES,
    INVOICES_PATH,
    SANDBOX_API_KEY,
    USAGE_PATH,
    Faults,
    LoggedRequest,
    Sandbox,
    error_body,
)
from .usage import FUTURE_BUCKET_MODES, SandboxBadRequest, SandboxNotFound, aggregate, format_duration

__all__ = [
    "ACCOUNT_PATH",
    "AGENTS_WITHOUT_CALLS_MODES",
    "AGENT_EMPTY_DAY_MODES",
    "AGENT_IDS",
    "AGENT_NAMES",
    "AGENT_USAGE_PATH",
    "BILLING_EMPTY_DAY_MODES",
    "BILLING_USAGE_PATH",
    "BUCKET_SECONDS",
    "CALLS_PAGE_SIZE",
    "CALLS_PAGE_SIZE_MAX",
    "CALLS_PATH",
    "CALL_PATH",
    "CALL_SORTS",
    "CONCURRENCY_EMPTY_BUCKET_MODES",
    "CONCURRENCY_END_MODES",
    "CONCURRENCY_PATH",
    "CREDITED_AGENT_ID",
    "CUSTOMERS",
    "ERROR_BODY_SHAPES",
    "ERROR_END_REASONS",
    "FREE_TIME",
    "FUTURE_BUCKET_MODES",
    "IDLE_AGENT_ID",
    "INVOICES_PAGE_SIZE",
    "INVOICES_PAGE_SIZE_MAX",
    "INVOICES_PATH",
    "INVOICE_AMOUNT_UNITS",
    "MAX_BILLING_DAYS",
    "PRICE_PER_MINUTE_USD",
    "RUNNING_CALLS_MODES",
    "SANDBOX_API_KEY",
    "UNNAMED_AGENT_ID",
    "USAGE_PATH",
    "VOICE_IDS",
    "Call",
    "Faults",
    "LoggedRequest",
    "Sandbox",
    "SandboxBadRequest",
    "SandboxNotFound",
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
