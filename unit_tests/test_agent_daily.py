"""agentDaily: GET /agents/usage, one record per agent and UTC day, with the call filters."""

from __future__ import annotations

import pytest

from unit_tests.conftest import (
    AGENTS_URL,
    errors,
    final_state,
    make_config,
    make_state,
    query,
    records,
    run_read,
    windows,
)

AGENT_A = {"agentId": "0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01", "name": "Front desk"}
AGENT_B = {"agentId": "1c7a8d2f-3b68-4e2b-8b52-6d1f9a4e3b02", "name": 'Billing "bot"'}
VOICE = "9a1e2b3c-4d5e-4f60-8a71-b2c3d4e5f601"


def row(day: str, calls: int = 2, minutes: float = 3.5, **extra) -> dict:
    return {"date": day, "calls": calls, "billedMinutes": minutes, **extra}


def serve(api, agents: list[tuple[dict, list[dict]]]) -> None:
    """Answer each window with every agent's rows inside fromDate..toDate (an agent with none is
    still listed, with an empty usage list: one of the two answers the API may give)."""

    def answer(request, context):
        q = query(request)
        low, high = q["fromDate"][0], q["toDate"][0]
        return [
            {"agent": agent, "usage": [r for r in rows if low <= r["date"] <= high]} for agent, rows in agents
        ]

    api.register(url=AGENTS_URL, json=answer)


def read(config=None, **kwargs):
    return run_read(config or make_config(), streams=["agentDaily"], **kwargs)


def test_one_record_per_agent_and_day(api):
    serve(
        api, [(AGENT_A, [row("2025-03-01"), row("2025-03-03", 1, 0.5)]), (AGENT_B, [row("2025-03-02", 4, 9)])]
    )
    output = read()
    assert errors(output) == []
    assert sorted(records(output, "agentDaily"), key=lambda r: (r["date"], r["agentId"])) == [
        {
            "agentId": AGENT_A["agentId"],
            "agentName": "Front desk",
            "date": "2025-03-01",
            "calls": 2,
            "billedMinutes": 3.5,
        },
        {
            "agentId": AGENT_B["agentId"],
            "agentName": 'Billing "bot"',
            "date": "2025-03-02",
            "calls": 4,
            "billedMinutes": 9,
        },
        {
            "agentId": AGENT_A["agentId"],
            "agentName": "Front desk",
            "date": "2025-03-03",
            "calls": 1,
            "billedMinutes": 0.5,
        },
    ]
    assert final_state(output, "agentDaily") == {"date": "2025-03-03"}


def test_unknown_fields_of_a_row_pass_through(api):
    serve(api, [(AGENT_A, [row("2025-03-01", sipMinutes=1.25)])])
    [record] = records(read(), "agentDaily")
    assert record["sipMinutes"] == 1.25


def test_days_and_agents_left_out_are_simply_not_emitted(api):
    api.register(url=AGENTS_URL, json=[{"agent": AGENT_A, "usage": [row("2025-03-04")]}])
    output = read()
    assert [(r["agentId"], r["date"]) for r in records(output, "agentDaily")] == [
        (AGENT_A["agentId"], "2025-03-04")
    ]


def test_one_request_per_window_for_every_agent_with_the_call_filters(api):
    serve(api, [(AGENT_A, [])])
    config = make_config(
        start_date="2025-03-01",
        end_date="2025-03-10",
        window_days=4,
        agent_ids=[AGENT_A["agentId"], AGENT_B["agentId"]],
        voice_id=VOICE,
        duration_min=30,
        duration_max=1e-7 + 100,
        metadata=[{"key": "campaign", "value": "None"}],
        search="1e5",
        time_of_day_start="09:00:00",
        time_of_day_end="17:30:00",
    )
    output = read(config)
    assert errors(output) == []
    assert api.date_ranges() == windows("2025-03-01", "2025-03-10", 4)
    for request in api.requests:
        assert {k: v for k, v in query(request).items() if k not in ("fromDate", "toDate")} == {
            "agentIds": [AGENT_A["agentId"], AGENT_B["agentId"]],
            "voiceId": [VOICE],
            "durationMin": ["30s"],
            "durationMax": ["100.0000001s"],
            "metadata.campaign": ["None"],
            "search": ["1e5"],
            "timeOfDayStart": ["09:00:00"],
            "timeOfDayEnd": ["17:30:00"],
        }


def test_incremental_restarts_at_its_own_cursor_minus_lookback(api):
    serve(api, [(AGENT_A, [row("2025-03-04")])])
    state = make_state(agentDaily={"date": "2025-03-04"}, daily={"date": "2024-06-01"})
    output = read(make_config(start_date="2025-01-01", end_date="2025-03-05", lookback_days=2), state=state)
    assert errors(output) == []
    assert api.date_ranges() == [("2025-03-02", "2025-03-05")]
    assert final_state(output, "agentDaily") == {"date": "2025-03-04"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"results": []}, "its top-level keys are ['results']"),
        ([{"agent": AGENT_A}], "an item is"),
        ([{"agent": "x", "usage": []}], "an item is"),
        ([{"agent": AGENT_A, "usage": ["2025-03-01"]}], "a row is '2025-03-01'"),
    ],
    ids=["object", "no-usage", "agent-not-object", "row-not-object"],
)
def test_a_body_of_another_shape_is_a_system_error_naming_the_endpoint(api, body, why):
    api.register(url=AGENTS_URL, json=body)
    output = read(fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert message.startswith(f"Ultravox answered {AGENTS_URL} with a body the connector does not expect")
    assert why in message
    assert records(output, "agentDaily") == []


def test_an_agent_named_empty_syncs_as_sent(api):
    # The published schema gives AgentBasic.name no minLength.
    nameless = {"agentId": AGENT_B["agentId"], "name": ""}
    serve(api, [(nameless, [row("2025-03-02", 1, 0.5)]), (AGENT_A, [row("2025-03-02")])])
    output = read()
    assert errors(output) == []
    assert sorted(records(output, "agentDaily"), key=lambda r: r["agentId"]) == [
        {
            "agentId": AGENT_A["agentId"],
            "agentName": "Front desk",
            "date": "2025-03-02",
            "calls": 2,
            "billedMinutes": 3.5,
        },
        {
            "agentId": AGENT_B["agentId"],
            "agentName": "",
            "date": "2025-03-02",
            "calls": 1,
            "billedMinutes": 0.5,
        },
    ]


def test_negative_figures_sync_as_sent(api):
    # The published schema sets no minimum: a credit makes a day's minutes (and a count) negative.
    serve(api, [(AGENT_A, [row("2025-03-01", calls=-1, minutes=-12.5), row("2025-03-02", 0, -0.1)])])
    output = read()
    assert errors(output) == []
    assert sorted(records(output, "agentDaily"), key=lambda r: r["date"]) == [
        {
            "agentId": AGENT_A["agentId"],
            "agentName": "Front desk",
            "date": "2025-03-01",
            "calls": -1,
            "billedMinutes": -12.5,
        },
        {
            "agentId": AGENT_A["agentId"],
            "agentName": "Front desk",
            "date": "2025-03-02",
            "calls": 0,
            "billedMinutes": -0.1,
        },
    ]
    assert final_state(output, "agentDaily") == {"date": "2025-03-02"}


@pytest.mark.parametrize(
    ("agent", "day", "field", "shown", "expected"),
    [
        ({"agentId": None, "name": "x"}, row("2025-03-01"), "agentId", "None", "a string"),
        ({"agentId": AGENT_A["agentId"]}, row("2025-03-01"), "agentName", "None", "a string"),
        ({**AGENT_A, "name": 7}, row("2025-03-01"), "agentName", "7", "a string"),
        (AGENT_A, row("2025-03-01", calls=2.0), "calls", "2.0", "an integer"),
        (AGENT_A, row("2025-03-01", calls="3"), "calls", "'3'", "an integer"),
        (AGENT_A, row("2025-03-01", calls=True), "calls", "True", "an integer"),
        (AGENT_A, {"date": "2025-03-01", "billedMinutes": 1.0}, "calls", "None", "an integer"),
        (AGENT_A, row("2025-03-01", minutes="3"), "billedMinutes", "'3'", "a number"),
        (AGENT_A, row("2025-03-01", minutes=False), "billedMinutes", "False", "a number"),
        (AGENT_A, row("2025-3-1"), "date", "'2025-3-1'", "a YYYY-MM-DD date"),
    ],
)
def test_a_missing_field_or_a_wrong_type_is_a_system_error_quoting_it(
    api, agent, day, field, shown, expected
):
    api.register(url=AGENTS_URL, json=[{"agent": agent, "usage": [day]}])
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a agentDaily record whose {field} is {shown}, not {expected}. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]
    assert records(output, "agentDaily") == []
