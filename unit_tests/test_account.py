"""account: GET /accounts/me, the account as of the sync, one record stamped readAt, by an
allow-list that leaves billingUrl out; durations parsed to seconds beside the API's strings."""

from __future__ import annotations

import datetime as datetime_module
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from unit_tests.conftest import (
    ACCOUNT_URL,
    API_KEY,
    all_text,
    errors,
    make_config,
    query,
    records,
    run_discover,
    run_read,
    schema_errors,
    states,
)

ACCOUNT_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
BILLING_LINK = "https://billing.stripe.com/p/session/live_YWNjdF9zZWNyZXQ"
NOW = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def api_account(**fields: Any) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT_ID,
        "name": "Acme Voice",
        "billingUrl": BILLING_LINK,
        "freeTimeUsed": "1800s",
        "freeTimeRemaining": "1799.5s",
        "hasActiveSubscription": True,
        "subscriptionTier": "PRO",
        "subscriptionCadence": "monthly",
        "subscriptionExpiration": None,
        "subscriptionScheduledUpdate": "2025-04-01T00:00:00+00:00",
        "subscriptionRenewal": "2025-04-01T00:00:00Z",
        "activeCalls": 3,
        "allowedConcurrentCalls": 100,
        "allowedVoices": 20,
        "allowedCorpora": None,
        **fields,
    }


@pytest.fixture
def clock(monkeypatch):
    """The manifest's now_utc() reads NOW (as integration_tests/cli.py's follow_clock moves it)."""
    from airbyte_cdk.sources.declarative.interpolation import macros

    class AnyDatetime(type):
        def __instancecheck__(cls, value: object) -> bool:
            return isinstance(value, datetime)

    class ClockDatetime(datetime, metaclass=AnyDatetime):
        @classmethod
        def now(cls, tz: datetime_module.tzinfo | None = None) -> datetime:  # type: ignore[override]
            return NOW.astimezone(tz)

    module = types.ModuleType("datetime")
    module.__dict__.update(vars(datetime_module))
    module.datetime = ClockDatetime  # type: ignore[attr-defined]
    monkeypatch.setattr(macros, "datetime", module)
    return NOW


def read(config=None, **kwargs):
    return run_read(config or make_config(), streams=["account"], **kwargs)


def test_one_record_with_the_time_it_was_read_and_seconds_parsed(api, clock):
    api.register(url=ACCOUNT_URL, json=api_account())
    output = read()
    assert errors(output) == []
    [record] = records(output, "account")
    # allowedCorpora and subscriptionExpiration are null: the CDK leaves them out of the record.
    assert record == {
        "accountId": ACCOUNT_ID,
        "name": "Acme Voice",
        "freeTimeUsed": "1800s",
        "freeTimeUsedSeconds": 1800.0,
        "freeTimeRemaining": "1799.5s",
        "freeTimeRemainingSeconds": 1799.5,
        "hasActiveSubscription": True,
        "subscriptionTier": "PRO",
        "subscriptionCadence": "monthly",
        "subscriptionScheduledUpdate": "2025-04-01T00:00:00Z",
        "subscriptionRenewal": "2025-04-01T00:00:00Z",
        "activeCalls": 3,
        "allowedConcurrentCalls": 100,
        "allowedVoices": 20,
        "readAt": "2025-03-04T05:06:07Z",
    }
    assert schema_errors("account", record) == []
    assert "billing.stripe.com" not in all_text(output)


def test_one_request_without_parameters_whatever_the_config(api, clock):
    api.register(url=ACCOUNT_URL, json=api_account())
    config = make_config(
        start_date="2024-01-01", window_days=1, agent_ids=["0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01"]
    )
    output = read(config)
    assert errors(output) == []
    [request] = api.requests
    assert request.url == ACCOUNT_URL
    assert query(request) == {}
    assert request.headers["X-API-Key"] == API_KEY


def test_full_refresh_keyed_by_account_and_read_time(api, clock):
    [stream] = [s for s in run_discover(make_config()).catalog.catalog.streams if s.name == "account"]
    assert [m.value for m in stream.supported_sync_modes] == ["full_refresh"]
    assert stream.source_defined_primary_key == [["accountId"], ["readAt"]]
    assert "billingUrl" not in stream.json_schema["properties"]
    api.register(url=ACCOUNT_URL, json=api_account())
    assert states(read(), "account") == [{"__ab_no_cursor_state_message": True}]


def test_a_free_account_syncs_its_nulls(api, clock):
    free = api_account(
        hasActiveSubscription=False,
        subscriptionTier=None,
        subscriptionCadence=None,
        subscriptionScheduledUpdate=None,
        subscriptionRenewal=None,
        allowedConcurrentCalls=None,
        allowedVoices=None,
        freeTimeRemaining="0s",
        newField="added later",
    )
    api.register(url=ACCOUNT_URL, json=free)
    [record] = records(read(), "account")
    assert record == {
        "accountId": ACCOUNT_ID,
        "name": "Acme Voice",
        "freeTimeUsed": "1800s",
        "freeTimeUsedSeconds": 1800.0,
        "freeTimeRemaining": "0s",
        "freeTimeRemainingSeconds": 0.0,
        "hasActiveSubscription": False,
        "activeCalls": 3,
        "readAt": "2025-03-04T05:06:07Z",
    }
    assert schema_errors("account", record) == []


@pytest.mark.parametrize(
    ("fields", "name", "shown", "expected"),
    [
        ({"accountId": None}, "accountId", "None", "a string"),
        ({"hasActiveSubscription": "yes"}, "hasActiveSubscription", "'yes'", "true or false"),
        ({"hasActiveSubscription": None}, "hasActiveSubscription", "None", "true or false"),
        ({"activeCalls": 1.0}, "activeCalls", "1.0", "an integer"),
        ({"allowedVoices": True}, "allowedVoices", "True", "an integer"),
        ({"freeTimeUsed": 1800}, "freeTimeUsed", "1800", "a seconds string such as '1234.5s'"),
        ({"freeTimeRemaining": None}, "freeTimeRemaining", "None", "a seconds string such as '1234.5s'"),
        (
            {"subscriptionRenewal": "2025-04-01"},
            "subscriptionRenewal",
            "'2025-04-01'",
            "an RFC 3339 date-time with a UTC offset",
        ),
    ],
)
def test_a_wrong_type_stops_the_stream_quoting_it(api, clock, fields, name, shown, expected):
    api.register(url=ACCOUNT_URL, json=api_account(**fields))
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a account record whose {name} is {shown}, not {expected}. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]


@pytest.mark.parametrize(
    ("body", "why"), [([api_account()], "it is a JSON list"), ("PRO", "it is a JSON str")]
)
def test_a_body_of_another_shape_is_a_system_error_naming_the_endpoint(api, body, why):
    api.register(url=ACCOUNT_URL, json=body)
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox answered {ACCOUNT_URL} with a body the connector does not expect "
            f"(it expects a JSON object): {why}.",
        )
    ]


def test_a_rejected_key_is_a_config_error(api):
    api.register(url=ACCOUNT_URL, status_code=401, json={"detail": "Invalid API key."})
    output = read(fails=True)
    assert errors(output) == [
        (
            "config_error",
            "Ultravox rejected the API key (Invalid API key.). Check that api_key is a current API key "
            "of your Ultravox account.",
        )
    ]
