"""calls: GET /calls, the usage ledger, one record per call by an allow-list of usage fields, in
windows of whole UTC days read page by page through `next`, on the api_url origin only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import yaml

from source_ultravox_usage.components import CheckedRecordTransformation
from unit_tests.conftest import (
    API_KEY,
    CALLS_URL,
    MANIFEST,
    all_text,
    errors,
    final_state,
    make_config,
    make_state,
    query,
    records,
    run_read,
    schema_errors,
    states,
)

AGENT = "0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01"
OTHER_AGENT = "1c7a8d2f-3b68-4e2b-8b52-6d1f9a4e3b02"
VOICE = "9a1e2b3c-4d5e-4f60-8a71-b2c3d4e5f601"
ONE_DAY = {"start_date": "2025-03-01", "end_date": "2025-03-01"}

# The record's fields, in order: the list.
FIELDS = [
    "callId",
    "created",
    "joined",
    "ended",
    "endReason",
    "billedDuration",
    "billedDurationSeconds",
    "billingStatus",
    "billedSideInputTokens",
    "billedSideOutputTokens",
    "agentId",
    "metadata",
    "voice",
    "model",
    "mediumKind",
    "sipBilledDuration",
    "sipBilledDurationSeconds",
    "sipTerminationReason",
]

# What a Call also carries and the ledger must never copy: its content, a link that joins it, its
# state, and a field the API adds later.
CONTENT = {
    "systemPrompt": "You are Ada. The caller's PIN is 4711.",
    "summary": "The caller disputed an invoice and gave a card number.",
    "shortSummary": "Disputed invoice.",
    "joinUrl": "wss://voice.ultravox.ai/calls/join/secret-join-token",
    "initialState": {"customer": "Jane Roe", "balance": 1200},
    "requestContext": {"ip": "203.0.113.7", "headers": {"cookie": "sessionid=abc"}},
    "brandNewField": "added by the API after this connector was written",
    "inactivityMessages": [{"duration": "30s", "text": "Are you still there, Jane?"}],
    "agent": {"agentId": AGENT, "name": "Front desk"},
    "firstSpeakerSettings": {"agent": {"text": "Hello Jane"}},
    "experimentalSettings": {"flag": True},
    "clientVersion": "web-1.2.3",
    "recordingEnabled": True,
    "temperature": 0.4,
    "maxDuration": "3600s",
}


def api_call(call_id: str, created: str, **fields: Any) -> dict[str, Any]:
    """A Call as GET /calls lists it: an ended, billed SIP call with its content, but for `fields`."""
    return {
        "callId": call_id,
        "created": created,
        "joined": "2025-03-01T10:00:05Z",
        "ended": "2025-03-01T10:02:05Z",
        "endReason": "hangup",
        "billedDuration": "120s",
        "billedSideInputTokens": 1500,
        "billedSideOutputTokens": 320,
        "billingStatus": "BILLING_STATUS_BILLED",
        "agentId": AGENT,
        "metadata": {"campaign": "spring", "customer": "42"},
        "voice": "Mark",
        "model": "ultravox-v0.7",
        "medium": {"sip": {"incoming": {}}},
        "sipDetails": {"billedDuration": "121.5s", "terminationReason": "SIP_TERMINATION_NORMAL"},
        **CONTENT,
        **fields,
    }


def written(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the CDK writes it: its serializer leaves out the fields that are null (a
    destination stores them as null)."""
    return {name: value for name, value in record.items() if value is not None}


def page(results: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    return {"results": results, "next": next_url, "previous": None, "total": len(results)}


def next_url(request: Any, cursor: str, base: str = CALLS_URL) -> str:
    """The `next` Django REST Framework writes: the request's query, its cursor replaced."""
    params = [
        (name, value) for name, values in query(request).items() for value in values if name != "cursor"
    ]
    return f"{base}?{urlencode([('cursor', cursor), *params])}"


def serve(api, calls: list[dict[str, Any]], page_size: int = 2) -> None:
    """Answer each window with the calls created on its days, page_size a page, as DRF pages them."""

    def answer(request, context):
        q = query(request)
        low, high = q["fromDate"][0], q["toDate"][0]
        inside = [c for c in calls if low <= c["created"][:10] <= high]
        start = int(q.get("cursor", ["0"])[0])
        rest = inside[start + page_size :]
        return page(
            inside[start : start + page_size], next_url(request, str(start + page_size)) if rest else None
        )

    api.register(url=CALLS_URL, json=answer)


def read(config=None, **kwargs):
    return run_read(config or make_config(**ONE_DAY), streams=["calls"], **kwargs)


def manifest_checks() -> CheckedRecordTransformation:
    """The calls stream's CheckedRecordTransformation, built from the manifest's definition."""
    [stream] = [s for s in yaml.safe_load(MANIFEST.read_text())["streams"] if s.get("name") == "calls"]
    [definition] = stream["transformations"]
    fields = {k: v for k, v in definition.items() if k not in ("type", "class_name")}
    return CheckedRecordTransformation(parameters={"name": "calls"}, **fields)


# --------------------------------------------------------------------------- records


def test_one_record_per_call_with_only_the_usage_fields_in_order(api):
    api.register(url=CALLS_URL, json=page([api_call("c-1", "2025-03-01T10:00:00Z")]))
    output = read()
    assert errors(output) == []
    [record] = records(output, "calls")
    assert record == {
        "callId": "c-1",
        "created": "2025-03-01T10:00:00Z",
        "joined": "2025-03-01T10:00:05Z",
        "ended": "2025-03-01T10:02:05Z",
        "endReason": "hangup",
        "billedDuration": "120s",
        "billedDurationSeconds": 120.0,
        "billingStatus": "BILLING_STATUS_BILLED",
        "billedSideInputTokens": 1500,
        "billedSideOutputTokens": 320,
        "agentId": AGENT,
        "metadata": {"campaign": "spring", "customer": "42"},
        "voice": "Mark",
        "model": "ultravox-v0.7",
        "mediumKind": "sip",
        "sipBilledDuration": "121.5s",
        "sipBilledDurationSeconds": 121.5,
        "sipTerminationReason": "SIP_TERMINATION_NORMAL",
    }
    assert list(record) == FIELDS
    assert schema_errors("calls", record) == []


def test_no_content_of_a_call_reaches_the_output(api):
    api.register(url=CALLS_URL, json=page([api_call("c-1", "2025-03-01T10:00:00Z")]))
    output = read()
    [record] = records(output, "calls")
    assert set(record).isdisjoint(CONTENT) and "medium" not in record and "sipDetails" not in record
    text = all_text(output)
    for secret in (
        "PIN is 4711",
        "card number",
        "Disputed invoice",
        "secret-join-token",
        "Jane",
        "203.0.113.7",
        "sessionid",
        "added by the API",
    ):
        assert secret not in text, secret


def test_a_running_call_syncs_as_it_is(api):
    running = api_call(
        "c-run",
        "2025-03-01T23:50:00Z",
        joined="2025-03-01T23:50:02Z",
        ended=None,
        endReason=None,
        billedDuration=None,
        billedSideInputTokens=None,
        billedSideOutputTokens=None,
        billingStatus="BILLING_STATUS_PENDING",
        agentId=None,
        voice=None,
        medium={"webRtc": {}},
        sipDetails=None,
    )
    del running["model"]  # not required by the published schema
    api.register(url=CALLS_URL, json=page([running]))
    output = read()
    assert errors(output) == []
    [record] = records(output, "calls")
    assert record == {
        "callId": "c-run",
        "created": "2025-03-01T23:50:00Z",
        "joined": "2025-03-01T23:50:02Z",
        "billingStatus": "BILLING_STATUS_PENDING",
        "metadata": {"campaign": "spring", "customer": "42"},
        "mediumKind": "webRtc",
    }
    assert schema_errors("calls", record) == []


def test_the_transformation_gives_a_running_call_every_field_null_in_order():
    record = {
        "callId": "c-run",
        "created": "2025-03-01T23:50:00Z",
        "billingStatus": "BILLING_STATUS_PENDING",
        "metadata": {},
        "medium": None,
        "systemPrompt": "x",
    }
    manifest_checks().transform(record)
    assert list(record) == FIELDS
    assert {name: value for name, value in record.items() if value is not None} == {
        "callId": "c-run",
        "created": "2025-03-01T23:50:00Z",
        "billingStatus": "BILLING_STATUS_PENDING",
        "metadata": {},
    }


@pytest.mark.parametrize(
    ("medium", "kind"),
    [
        ({"webRtc": {}}, "webRtc"),
        ({"twilio": {}}, "twilio"),
        ({"serverWebSocket": {"inputSampleRate": 8000}}, "serverWebSocket"),
        (None, None),
        ({}, None),
    ],
)
def test_the_medium_kind_is_the_one_key_of_the_medium(api, medium, kind):
    api.register(
        url=CALLS_URL, json=page([api_call("c-1", "2025-03-01T10:00:00Z", medium=medium, sipDetails=None)])
    )
    [record] = records(read(), "calls")
    assert record.get("mediumKind") == kind
    assert "sipBilledDuration" not in record and "sipTerminationReason" not in record


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2025-03-01T10:00:00Z", "2025-03-01T10:00:00Z"),
        ("2025-03-01T10:00:00.000Z", "2025-03-01T10:00:00Z"),
        ("2025-03-01T10:00:00.123456Z", "2025-03-01T10:00:00.123456Z"),
        ("2025-03-01T10:00:00.5Z", "2025-03-01T10:00:00.500000Z"),
        ("2025-03-01T12:00:00.123456+02:00", "2025-03-01T10:00:00.123456Z"),
        ("2025-03-01T10:00:00.123456789Z", "2025-03-01T10:00:00.123456Z"),
    ],
)
def test_timestamps_are_rfc_3339_utc_with_their_microseconds(api, sent, stored):
    api.register(url=CALLS_URL, json=page([api_call("c-1", sent, joined=sent)]))
    output = read()
    assert errors(output) == []
    [record] = records(output, "calls")
    assert (record["created"], record["joined"]) == (stored, stored)
    # The cursor reads them; the state keeps the second.
    assert final_state(output, "calls") == {"created": stored[:19] + "Z"}


@pytest.mark.parametrize(
    ("fields", "name", "shown", "expected"),
    [
        ({"callId": None}, "callId", "None", "a string"),
        ({"created": None}, "created", "None", "an RFC 3339 date-time with a UTC offset"),
        (
            {"created": "2025-03-01 10:00:00"},
            "created",
            "'2025-03-01 10:00:00'",
            "an RFC 3339 date-time with a UTC offset",
        ),
        (
            {"ended": "2025-03-01T10:02:05"},
            "ended",
            "'2025-03-01T10:02:05'",
            "an RFC 3339 date-time with a UTC offset",
        ),
        ({"billingStatus": None}, "billingStatus", "None", "a string"),
        ({"billedDuration": 120}, "billedDuration", "120", "a seconds string such as '1234.5s'"),
        (
            {"billedDuration": "2 minutes"},
            "billedDuration",
            "'2 minutes'",
            "a seconds string such as '1234.5s'",
        ),
        ({"billedSideInputTokens": "1500"}, "billedSideInputTokens", "'1500'", "an integer"),
        ({"billedSideOutputTokens": 1.5}, "billedSideOutputTokens", "1.5", "an integer"),
        ({"metadata": None}, "metadata", "None", "an object of strings"),
        ({"metadata": {"n": 1}}, "metadata", "{'n': 1}", "an object of strings"),
        ({"agentId": 7}, "agentId", "7", "a string"),
        (
            {"medium": {"sip": {}, "twilio": {}}},
            "medium",
            "an object with the keys ['sip', 'twilio']",
            "null or an object with one key",
        ),
        ({"medium": "sip"}, "medium", "a JSON str", "null or an object with one key"),
        ({"sipDetails": "none"}, "sipDetails", "a JSON str", "an object"),
        (
            {"sipDetails": {"billedDuration": 3, "terminationReason": None}},
            "sipBilledDuration",
            "3",
            "a seconds string such as '1234.5s'",
        ),
    ],
)
def test_a_wrong_type_stops_the_stream_quoting_it(api, fields, name, shown, expected):
    api.register(url=CALLS_URL, json=page([{**api_call("c-1", "2025-03-01T10:00:00Z"), **fields}]))
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a calls record whose {name} is {shown}, not {expected}. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]
    assert records(output, "calls") == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([], "it is a JSON list"),
        ({"calls": []}, "its top-level keys are ['calls']"),
        ({"results": {}}, "its results is a JSON dict"),
    ],
)
def test_a_body_of_another_shape_is_a_system_error_naming_the_endpoint(api, body, why):
    api.register(url=CALLS_URL, json=body)
    output = read(fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert message == (
        f"Ultravox answered {CALLS_URL} with a body the connector does not expect "
        f"(it expects a JSON object with results): {why}."
    )


# --------------------------------------------------------------------------- requests and pages


def test_a_two_page_window_follows_next_as_given(api):
    second = f"{CALLS_URL}?cursor=cD0yMDI1&fromDate=2025-03-01&toDate=2025-03-01&pageSize=1000"
    api.register(
        url=CALLS_URL,
        response_list=[
            {"json": page([api_call("c-1", "2025-03-01T10:00:00Z")], second)},
            {"json": page([api_call("c-2", "2025-03-01T11:00:00Z")])},
        ],
    )
    output = read()
    assert errors(output) == []
    first, then = api.requests
    assert first.url == f"{CALLS_URL}?fromDate=2025-03-01&toDate=2025-03-01&pageSize=1000"
    assert then.url == second
    assert [r.headers["X-API-Key"] for r in api.requests] == [API_KEY, API_KEY]
    assert [r["callId"] for r in records(output, "calls")] == ["c-1", "c-2"]


def test_each_page_is_parsed_once(api, monkeypatch):
    """The paginator reads `next` from the body the page's records came from: parsing a page of
    1000 calls again cost a sixth of the stream's CPU."""
    serve(api, [api_call(f"c-{i}", f"2025-03-01T1{i}:00:00Z") for i in range(5)])
    parsed: list[bytes] = []
    loads = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda data: parsed.append(data) or loads(data))
    output = read()
    assert errors(output) == []
    assert [r["callId"] for r in records(output, "calls")] == [f"c-{i}" for i in range(5)]
    pages = [data for data in parsed if isinstance(data, bytes) and b'"results"' in data]
    assert len(api.requests) == 3
    assert len(pages) == 3


def test_every_filter_on_the_first_page_and_never_twice_after(api):
    serve(api, [api_call(f"c-{i}", f"2025-03-01T1{i}:00:00Z") for i in range(5)])
    config = make_config(
        **ONE_DAY,
        calls_page_size=2,
        agent_ids=[AGENT, OTHER_AGENT],
        voice_id=VOICE,
        duration_min=30,
        duration_max=600.5,
        metadata=[{"key": "campaign", "value": "Spring Sale"}, {"key": "région", "value": "Zürich"}],
        search="refund & return",
        time_of_day_start="09:00:00",
        time_of_day_end="17:30:00",
    )
    output = read(config)
    assert errors(output) == []
    window = {
        "fromDate": ["2025-03-01"],
        "toDate": ["2025-03-01"],
        "agentIds": [AGENT, OTHER_AGENT],
        "voiceId": [VOICE],
        "search": ["refund & return"],
        "timeOfDayStart": ["09:00:00"],
        "timeOfDayEnd": ["17:30:00"],
        "pageSize": ["2"],
        "durationMin": ["30s"],
        "durationMax": ["600.5s"],
        "metadata.campaign": ["Spring Sale"],
        "metadata.région": ["Zürich"],
    }
    assert [query(r) for r in api.requests] == [
        window,
        {"cursor": ["2"], **window},
        {"cursor": ["4"], **window},
    ]
    assert len(records(output, "calls")) == 5


@pytest.mark.parametrize(
    ("next_page", "expected"),
    [
        pytest.param(
            f"{CALLS_URL}?cursor=abc",
            f"{CALLS_URL}?cursor=abc&fromDate=2025-03-01&toDate=2025-03-01&agentIds={AGENT}&agentIds={OTHER_AGENT}"
            "&search=a+b&pageSize=1000&metadata.campaign=spring",
            id="only-the-cursor",
        ),
        pytest.param(
            f"{CALLS_URL}?cursor=abc&pageSize=100&agentIds={AGENT}&search=a+b",
            f"{CALLS_URL}?cursor=abc&pageSize=100&agentIds={AGENT}&search=a+b"
            "&fromDate=2025-03-01&toDate=2025-03-01&metadata.campaign=spring",
            id="some-with-other-values",
        ),
    ],
)
def test_a_next_that_leaves_parameters_out_gets_them_added_once(api, next_page, expected):
    api.register(
        url=CALLS_URL,
        response_list=[
            {"json": page([api_call("c-1", "2025-03-01T10:00:00Z")], next_page)},
            {"json": page([api_call("c-2", "2025-03-01T11:00:00Z")])},
        ],
    )
    config = make_config(
        **ONE_DAY,
        agent_ids=[AGENT, OTHER_AGENT],
        search="a b",
        metadata=[{"key": "campaign", "value": "spring"}],
    )
    output = read(config)
    assert errors(output) == []
    assert api.requests[1].url == expected


def test_a_parameter_left_out_of_a_later_next_is_still_sent(api):
    """Page 3's `next` leaves out what page 2's carried: the page just read holds the window's parameters."""
    api.register(
        url=CALLS_URL,
        response_list=[
            {"json": page([api_call("c-1", "2025-03-01T10:00:00Z")], f"{CALLS_URL}?cursor=p2")},
            {"json": page([api_call("c-2", "2025-03-01T11:00:00Z")], f"{CALLS_URL}?cursor=p3")},
            {"json": page([api_call("c-3", "2025-03-01T12:00:00Z")])},
        ],
    )
    output = read(make_config(**ONE_DAY, voice_id=VOICE))
    assert errors(output) == []
    assert [query(r) for r in api.requests] == [
        {"fromDate": ["2025-03-01"], "toDate": ["2025-03-01"], "voiceId": [VOICE], "pageSize": ["1000"]},
        {
            "cursor": ["p2"],
            "fromDate": ["2025-03-01"],
            "toDate": ["2025-03-01"],
            "voiceId": [VOICE],
            "pageSize": ["1000"],
        },
        {
            "cursor": ["p3"],
            "fromDate": ["2025-03-01"],
            "toDate": ["2025-03-01"],
            "voiceId": [VOICE],
            "pageSize": ["1000"],
        },
    ]


def test_windows_are_calls_window_days_whole_utc_days_with_the_page_size(api):
    serve(api, [])
    output = read(
        make_config(
            start_date="2025-03-01",
            end_date="2025-03-05",
            calls_window_days=2,
            calls_page_size=50,
            window_days=1,
        )
    )
    assert errors(output) == []
    assert sorted(
        (query(r)["fromDate"][0], query(r)["toDate"][0], query(r)["pageSize"][0]) for r in api.requests
    ) == [
        ("2025-03-01", "2025-03-02", "50"),
        ("2025-03-03", "2025-03-04", "50"),
        ("2025-03-05", "2025-03-05", "50"),
    ]


def test_the_defaults_are_one_day_windows_of_1000_call_pages(api):
    serve(api, [])
    read(make_config(start_date="2025-03-01", end_date="2025-03-03"))
    assert sorted(
        (query(r)["fromDate"][0], query(r)["toDate"][0], query(r)["pageSize"][0]) for r in api.requests
    ) == [
        ("2025-03-01", "2025-03-01", "1000"),
        ("2025-03-02", "2025-03-02", "1000"),
        ("2025-03-03", "2025-03-03", "1000"),
    ]


def test_windows_never_pass_today(api):
    serve(api, [])
    today = datetime.now(UTC).date()
    output = read(
        make_config(
            start_date=(today - timedelta(days=1)).isoformat(),
            end_date=(today + timedelta(days=30)).isoformat(),
        )
    )
    assert errors(output) == []
    assert sorted((query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests) == [
        ((today - timedelta(days=1)).isoformat(), (today - timedelta(days=1)).isoformat()),
        (today.isoformat(), today.isoformat()),
    ]


# --------------------------------------------------------------------------- state


def test_a_windows_state_comes_after_its_last_page(api):
    serve(api, [api_call(f"c-{d}{i}", f"2025-03-0{d}T1{i}:00:00Z") for d in (1, 2) for i in range(3)])
    output = read(make_config(start_date="2025-03-01", end_date="2025-03-02", num_workers=1))
    assert errors(output) == []
    assert [(query(r)["fromDate"][0], query(r).get("cursor")) for r in api.requests] == [
        ("2025-03-01", None),
        ("2025-03-01", ["2"]),
        ("2025-03-02", None),
        ("2025-03-02", ["2"]),
    ]
    sequence = [
        m.record.data["callId"] if m.record else m.state.stream.stream_state.__dict__
        for m in output.records_and_state_messages
    ]
    assert sequence == [
        "c-10",
        "c-11",
        "c-12",
        {"created": "2025-03-01T12:00:00Z"},
        "c-20",
        "c-21",
        "c-22",
        {"created": "2025-03-02T12:00:00Z"},
        {"created": "2025-03-02T12:00:00Z"},
    ]


def test_a_window_that_fails_on_its_second_page_saves_no_state(api):
    def answer(request, context):
        q = query(request)
        day = q["fromDate"][0]
        if "cursor" not in q:
            return page([api_call(f"c-{day}", f"{day}T10:00:00Z")], next_url(request, "2"))
        if day == "2025-03-02":
            return {"detail": "not a page"}
        return page([api_call(f"d-{day}", f"{day}T11:00:00Z")])

    api.register(url=CALLS_URL, json=answer)
    output = read(make_config(start_date="2025-03-01", end_date="2025-03-02", num_workers=1), fails=True)
    [(failure_type, _)] = errors(output)
    assert failure_type == "system_error"
    # The CDK repeats the last state when a stream fails: the first window's, never the second's.
    assert {blob["created"] for blob in states(output, "calls")} == {"2025-03-01T11:00:00Z"}
    # Page 1 of the failed window was written; the next sync reads the window again.
    assert [r["callId"] for r in records(output, "calls")] == ["c-2025-03-01", "d-2025-03-01", "c-2025-03-02"]


def test_incremental_restarts_at_its_cursor_minus_lookback_in_whole_days(api):
    serve(api, [api_call("c-1", "2025-03-03T08:00:00Z"), api_call("c-2", "2025-03-05T09:30:00.25Z")])
    state = make_state(calls={"created": "2025-03-04T10:00:00Z"}, daily={"date": "2024-06-01"})
    output = read(make_config(start_date="2025-01-01", end_date="2025-03-05", lookback_days=2), state=state)
    assert errors(output) == []
    assert sorted((query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests) == [
        ("2025-03-02", "2025-03-02"),
        ("2025-03-03", "2025-03-03"),
        ("2025-03-04", "2025-03-04"),
        ("2025-03-05", "2025-03-05"),
    ]
    assert [r["callId"] for r in records(output, "calls")] == ["c-1", "c-2"]
    assert final_state(output, "calls") == {"created": "2025-03-05T09:30:00Z"}


def test_a_state_the_connector_did_not_write_is_a_config_error(api):
    serve(api, [])
    output = read(state=make_state(calls={"created": "2025-03-04"}), fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert "calls has created='2025-03-04'" in message
    assert api.requests == []


# --------------------------------------------------------------------------- the origin of next


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        ("https://collector.example/api/calls?cursor=abc", "https://collector.example:443"),
        ("http://api.ultravox.ai/api/calls?cursor=abc", "http://api.ultravox.ai:80"),
        ("https://api.ultravox.ai:8443/api/calls?cursor=abc", "https://api.ultravox.ai:8443"),
        (
            "https://api.ultravox.ai.evil.example/api/calls?cursor=abc",
            "https://api.ultravox.ai.evil.example:443",
        ),
        ("/api/calls?cursor=abc", "a URL without a scheme and host"),
    ],
    ids=["other-host", "other-scheme", "other-port", "suffixed-host", "relative"],
)
def test_a_next_off_the_api_origin_is_refused_before_any_request_to_it(api, link, shown):
    api.register(url=CALLS_URL, json=page([api_call("c-1", "2025-03-01T10:00:00Z")], link))
    api.adapter.register_uri("GET", "https://collector.example/api/calls", json=page([]))
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox's answer from {CALLS_URL} links its next page on {shown}, not on "
            "https://api.ultravox.ai:443, the origin of api_url. The connector does not follow it (nor "
            "send the API key there); please report this response.",
        )
    ]
    [request] = api.requests
    assert request.url.startswith(CALLS_URL + "?")
    # The state the CDK repeats when a stream fails is the start: the window is not saved.
    assert {blob["created"] for blob in states(output, "calls")} == {"2025-03-01T00:00:00Z"}


def test_a_next_on_the_api_origin_written_otherwise_is_followed_with_the_key(api):
    link = (
        "HTTPS://API.Ultravox.ai:443/api/calls?cursor=abc&fromDate=2025-03-01&toDate=2025-03-01&pageSize=1000"
    )
    api.register(url=CALLS_URL, json=page([api_call("c-1", "2025-03-01T10:00:00Z")], link))
    # requests sends it lower-cased, its port kept.
    api.register(
        url="https://api.ultravox.ai:443/api/calls", json=page([api_call("c-2", "2025-03-01T11:00:00Z")])
    )
    output = read()
    assert errors(output) == []
    assert api.requests[1].url == link.replace("HTTPS://API.Ultravox.ai", "https://api.ultravox.ai")
    assert [r.headers["X-API-Key"] for r in api.requests] == [API_KEY, API_KEY]
    assert len(records(output, "calls")) == 2


def test_the_key_never_follows_a_later_page_off_the_origin(api, sleeps):
    """A `next` on the origin that redirects elsewhere: the authenticator takes the key off first."""
    elsewhere = "https://collector.example/api/calls"
    api.register(
        url=CALLS_URL,
        response_list=[
            {"json": page([api_call("c-1", "2025-03-01T10:00:00Z")], f"{CALLS_URL}?cursor=abc")},
            {"status_code": 302, "headers": {"Location": elsewhere}},
        ],
    )
    api.adapter.register_uri("GET", elsewhere, json=page([]))
    read(fails=None)
    first, second, third = api.requests
    assert first.headers["X-API-Key"] == second.headers["X-API-Key"] == API_KEY
    assert third.url.startswith(elsewhere) and "X-API-Key" not in third.headers
    assert API_KEY not in str(third.headers)


def test_a_next_naming_the_page_just_read_is_refused(api):
    def answer(request, context):
        return page([api_call("c-1", "2025-03-01T10:00:00Z")], request.url)

    api.register(url=CALLS_URL, json=answer)
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox's answer from {CALLS_URL} names the page just read as its next page; the "
            "connector stops rather than read it again. Please report this response.",
        )
    ]
    assert len(api.requests) == 1


@pytest.mark.parametrize("link", [5, "", ["x"]])
def test_a_next_that_is_no_url_is_a_system_error(api, link):
    api.register(url=CALLS_URL, json=page([api_call("c-1", "2025-03-01T10:00:00Z")], link))
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox answered {CALLS_URL} with a body the connector does not expect "
            f"(it expects a next page URL or null): its next is {link!r}.",
        )
    ]


# --------------------------------------------------------------------------- errors


def test_a_window_refused_as_too_large_is_split(api, sleeps):
    def answer(request, context):
        q = query(request)
        low, high = q["fromDate"][0], q["toDate"][0]
        if low != high:
            context.status_code = 400
            return {"detail": "Date range too large"}
        return page([api_call(f"c-{low}", f"{low}T10:00:00Z")])

    api.register(url=CALLS_URL, json=answer)
    output = read(make_config(start_date="2025-03-01", end_date="2025-03-02", calls_window_days=2))
    assert errors(output) == []
    assert [(query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests] == [
        ("2025-03-01", "2025-03-02"),
        ("2025-03-01", "2025-03-01"),
        ("2025-03-02", "2025-03-02"),
    ]
    assert [r["callId"] for r in records(output, "calls")] == ["c-2025-03-01", "c-2025-03-02"]
    assert final_state(output, "calls") == {"created": "2025-03-02T10:00:00Z"}


def test_a_refusal_on_a_later_page_is_the_same_config_error(api):
    api.register(
        url=CALLS_URL,
        response_list=[
            {"json": page([api_call("c-1", "2025-03-01T10:00:00Z")], f"{CALLS_URL}?cursor=bad")},
            {"status_code": 400, "json": {"cursor": ["Invalid cursor"]}},
        ],
    )
    output = read(fails=True)
    assert errors(output) == [
        (
            "config_error",
            "Ultravox refused the request (cursor: Invalid cursor). Check the connector's filters and dates.",
        )
    ]
    assert {blob["created"] for blob in states(output, "calls")} == {"2025-03-01T00:00:00Z"}


def test_a_server_error_on_a_later_page_is_retried(api, sleeps):
    api.register(
        url=CALLS_URL,
        response_list=[
            {"json": page([api_call("c-1", "2025-03-01T10:00:00Z")], f"{CALLS_URL}?cursor=p2")},
            {"status_code": 503, "text": "busy"},
            {"json": page([api_call("c-2", "2025-03-01T11:00:00Z")])},
        ],
    )
    output = read()
    assert errors(output) == []
    assert [query(r).get("cursor") for r in api.requests] == [None, ["p2"], ["p2"]]
    assert [r["callId"] for r in records(output, "calls")] == ["c-1", "c-2"]


def test_a_malformed_medium_is_quoted_without_its_credentials(api):
    """A SIP medium carries a username and password: an error names its keys, never its values."""
    medium = {"sip": {"outgoing": {"username": "trunk-user", "password": "S3CRET-pw"}}, "twilio": None}
    api.register(url=CALLS_URL, json=page([{**api_call("c-1", "2025-03-01T10:00:00Z"), "medium": medium}]))
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            "Ultravox sent a calls record whose medium is an object with the keys ['sip', 'twilio'], not "
            "null or an object with one key. The connector stops rather than guess; please report this "
            "response shape.",
        )
    ]
    printed = str([*output.logs, *output.trace_messages, *output.records])
    assert "S3CRET-pw" not in printed and "trunk-user" not in printed
