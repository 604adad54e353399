"""Ground truth of `GET /api/agents/usage` (operation agents_usage_list), from the one call log.

The body is a JSON list of `AgentUsage`: `[{"agent": {"agentId", "name"}, "usage": [{"date",
"billedMinutes", "calls"}]}]`. It takes the query parameters of `/accounts/me/usage/calls`, parsed
and applied by the same code (`parse_filters`, `matching_states`), so a call counts here exactly
when it counts there; `calls` is the number of matching calls created that UTC day (running ones
included) and `billedMinutes` their billed minutes at `now` (0 while running).

- Calls created without an agent are in no agent's rows (they still count in /usage/calls).
- Agents are listed sorted by name, then id. With `agentIds`, only the named agents can be listed;
  an id that is no agent of the account is never listed.
- `agents_without_calls`: "omit" leaves out agents with no matching call in the range; "list"
  lists every (named) agent, those without a matching call with an empty `usage` list.
- `empty_days`: "omit" lists only days with at least one matching call; "zero" gives each agent
  that has calls a row for every day of the requested range (the days /usage/calls lists in its
  "zero" mode: fromDate's day, or the first call's, up to toDate's day or today). An agent
  without calls keeps an empty `usage` list in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from .calls import AGENT_NAMES, Call
from .usage import matching_states, parse_filters, requested_days

AGENTS_WITHOUT_CALLS_MODES = ("omit", "list")
AGENT_EMPTY_DAY_MODES = ("omit", "zero")


def agent_usage(
    calls: Sequence[Call],
    params: dict[str, list[str]],
    now: datetime,
    agents_without_calls: str = "omit",
    empty_days: str = "omit",
    agents: Mapping[str, str] = AGENT_NAMES,
) -> list[dict[str, Any]]:
    """The `/agents/usage` body for `params` at `now`; `agents` maps every agent id to its name."""
    if agents_without_calls not in AGENTS_WITHOUT_CALLS_MODES:
        raise ValueError(f"agents_without_calls must be one of {AGENTS_WITHOUT_CALLS_MODES}")
    if empty_days not in AGENT_EMPTY_DAY_MODES:
        raise ValueError(f"empty_days must be one of {AGENT_EMPTY_DAY_MODES}")
    now = now.astimezone(UTC)
    f = parse_filters(params)
    per_agent: dict[str, dict[date, list[Any]]] = {}
    for state in matching_states(calls, f, now):
        agent_id = state.call.agent_id
        if agent_id is None:
            continue
        row = per_agent.setdefault(agent_id, {}).setdefault(state.call.created.date(), [0, 0.0])
        row[0] += 1
        row[1] += state.billed_minutes

    listed = [a for a in agents if f.agent_ids is None or a in f.agent_ids]
    if agents_without_calls == "omit":
        listed = [a for a in listed if a in per_agent]
    days = requested_days(calls, f, now) if empty_days == "zero" else []

    body = []
    for agent_id in sorted(listed, key=lambda a: (agents[a], a)):
        rows = per_agent.get(agent_id, {})
        if rows:
            for day in days:
                rows.setdefault(day, [0, 0.0])
        usage = [
            # float() keeps whole sums a JSON float; round() drops summation noise.
            {"date": day.isoformat(), "billedMinutes": float(round(rows[day][1], 6)), "calls": rows[day][0]}
            for day in sorted(rows)
        ]
        body.append({"agent": {"agentId": agent_id, "name": agents[agent_id]}, "usage": usage})
    return body
