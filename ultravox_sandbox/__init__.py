"""A faithful local stand-in for Ultravox's `GET /api/accounts/me/usage/calls`.

from datetime import UTC, datetime, timedelta
from ultravox_sandbox import Sandbox, Faults

with Sandbox(now=datetime(2025, 3, 4, 15, 30, tzinfo=UTC)) as sb:
    requests.get(sb.url + "/accounts/me/usage/calls", headers={"X-API-Key": sb.api_key})
    sb.advance(timedelta(hours=2))          # running calls end, new calls arrive
    sb.faults = Faults(rate_limit_first=2)  # the next two requests get 429
    sb.ground_truth({"fromDate": ["2025-03-01"]})  # what the server answers for those params
"""

from .calls import AGENT_IDS, VOICE_IDS, Call, generate_calls
from .server import SANDBOX_API_KEY, USAGE_PATH, Faults, LoggedRequest, Sandbox
from .usage import SandboxBadRequest, aggregate, format_duration

__all__ = [
    "AGENT_IDS",
    "SANDBOX_API_KEY",
    "USAGE_PATH",
    "VOICE_IDS",
    "Call",
    "Faults",
    "LoggedRequest",
    "Sandbox",
    "SandboxBadRequest",
    "aggregate",
    "format_duration",
    "generate_calls",
]
