"""Config mistakes fail check, discover and read with a config error before any request: the
connector's own checks name the field; a violation of the spec's JSON schema is refused by the CDK in
its words ("Config validation error: ..."). Good configs (loopback http, defaults) pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest

from unit_tests.conftest import (
    API_KEY,
    catalog_dict,
    cli,
    errors,
    make_config,
    of_type,
    query,
    records,
    run_check,
    run_discover,
    run_read,
    usage_body,
    write_json,
)

TOMORROW = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class Names(NamedTuple):
    """A semantic check of the connector: its message names the field, and says what is wrong."""

    field: str
    fragment: str

    def assert_explains(self, message: str) -> None:
        assert self.field in message, message
        assert self.fragment in message, message


class Says(NamedTuple):
    """A violation of the spec's JSON schema, refused by the CDK before any of the connector's code
    runs, in the CDK's words: they name the value and the rule, not the field."""

    message: str

    def assert_explains(self, message: str) -> None:
        assert message == self.message


BAD_CONFIGS = [
    pytest.param(
        {"start_date": "2025-03-05", "end_date": "2025-03-01"},
        Names("end_date", "before start_date"),
        id="end<start",
    ),
    pytest.param(
        {"start_date": TOMORROW, "end_date": None}, Names("start_date", "in the future"), id="start-future"
    ),
    pytest.param(
        {"start_date": "2030-01-01", "end_date": "2030-01-31"}, Names("start_date", "future"), id="start-2030"
    ),
    pytest.param(
        {"duration_min": 60, "duration_max": 30}, Names("duration_min", "duration_max"), id="min>max"
    ),
    pytest.param(
        {"time_of_day_start": "17:00:00", "time_of_day_end": "09:00:00"},
        Names("time_of_day_end", "time_of_day_start"),
        id="tod-end<start",
    ),
    pytest.param(
        {"voice_id": "1234"},
        Says(f"Config validation error: '1234' does not match '{UUID_PATTERN}'"),
        id="voice-not-uuid",
    ),
    pytest.param(
        {"voice_id": "9b2c6a1e77d44c1fa3de0123456789ab"},
        Says(f"Config validation error: '9b2c6a1e77d44c1fa3de0123456789ab' does not match '{UUID_PATTERN}'"),
        id="voice-uuid-without-dashes",
    ),
    pytest.param(
        {"agent_ids": ["2f1b1e6c-1c3a-4d5e-9f00-1234567890ab", "x"]},
        Says(f"Config validation error: 'x' does not match '{UUID_PATTERN}'"),
        id="agent-not-uuid",
    ),
    pytest.param({"api_url": "http://api.ultravox.ai/api"}, Names("api_url", "https"), id="http-remote"),
    pytest.param({"api_url": "http://10.0.0.5:8000/api"}, Names("api_url", "https"), id="http-private-ip"),
    pytest.param(
        {"api_url": "http://localhost.evil.example/api"},
        Names("api_url", "https"),
        id="http-localhost-lookalike",
    ),
    pytest.param(
        {"api_url": "https://user:pw@api.ultravox.ai/api"},
        Names("api_url", "credentials"),
        id="url-credentials",
    ),
    pytest.param({"start_date": "2025-02-30"}, Names("start_date", "2025-02-30"), id="start-not-a-date"),
    pytest.param(
        {"start_date": "March 1"},
        Says("Config validation error: 'March 1' does not match '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"),
        id="start-bad-format",
    ),
    pytest.param(
        {"window_days": 0}, Says("Config validation error: 0 is less than the minimum of 1"), id="window-0"
    ),
    pytest.param(
        {"lookback_days": -1},
        Says("Config validation error: -1 is less than the minimum of 0"),
        id="lookback-negative",
    ),
    pytest.param({"search": ""}, Says("Config validation error: '' should be non-empty"), id="search-empty"),
    pytest.param(
        {"api_key": None}, Says("Config validation error: 'api_key' is a required property"), id="no-key"
    ),
]


def failing_config(overrides):
    return make_config(**overrides)


@pytest.mark.parametrize(("overrides", "expected"), BAD_CONFIGS)
def test_cli_check_prints_a_failed_status_explaining_the_mistake(api, tmp_path, capsys, overrides, expected):
    config = write_json(tmp_path / "config.json", failing_config(overrides))
    code, messages, out, err = cli(["check", "--config", config], capsys)
    assert code == 0
    [status] = of_type(messages, "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "FAILED"
    expected.assert_explains(status["connectionStatus"]["message"])
    assert of_type(messages, "TRACE") == []
    assert "Traceback" not in out + err
    assert api.call_count == 0


@pytest.mark.parametrize(("overrides", "expected"), BAD_CONFIGS)
def test_cli_read_prints_a_config_error_trace(api, tmp_path, capsys, overrides, expected):
    config = write_json(tmp_path / "config.json", failing_config(overrides))
    catalog = write_json(tmp_path / "catalog.json", catalog_dict())
    code, messages, out, err = cli(["read", "--config", config, "--catalog", catalog], capsys)
    assert code == 1
    [trace] = of_type(messages, "TRACE")
    assert trace["trace"]["type"] == "ERROR"
    assert trace["trace"]["error"]["failure_type"] == "config_error"
    expected.assert_explains(trace["trace"]["error"]["message"])
    assert of_type(messages, "RECORD") == []
    # Only Airbyte messages on stdout (the CDK logs the error's stack trace inside one), nothing on stderr.
    assert len(messages) == len(out.splitlines())
    assert "Traceback" not in err
    assert api.call_count == 0


@pytest.mark.parametrize(("overrides", "expected"), BAD_CONFIGS)
def test_in_process_read_and_discover_fail_with_a_config_error(api, overrides, expected):
    config = failing_config(overrides)
    output = run_read(config, fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    expected.assert_explains(message)
    assert output.records == []

    output = run_discover(config, fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    expected.assert_explains(message)
    assert api.call_count == 0


@pytest.mark.parametrize(("overrides", "expected"), BAD_CONFIGS)
def test_in_process_check_fails_explaining_the_mistake(api, tmp_path, overrides, expected):
    output = run_check(failing_config(overrides), tmp_path)
    [status] = output.connection_status_messages
    assert status.connectionStatus.status.value == "FAILED"
    expected.assert_explains(status.connectionStatus.message)
    assert api.call_count == 0


def test_cli_discover_with_a_bad_config(api, tmp_path, capsys):
    config = write_json(tmp_path / "config.json", make_config(duration_min=10, duration_max=5))
    code, messages, _, _ = cli(["discover", "--config", config], capsys)
    assert code == 1
    [trace] = of_type(messages, "TRACE")
    assert trace["trace"]["error"]["failure_type"] == "config_error"
    assert "duration_min" in trace["trace"]["error"]["message"]
    assert of_type(messages, "CATALOG") == []
    assert api.call_count == 0


def test_a_malformed_key_is_never_echoed(api, tmp_path, capsys):
    config = write_json(tmp_path / "config.json", make_config(api_key=["unit-test-key-in-a-list"]))
    _, messages, out, err = cli(["check", "--config", config], capsys)
    [status] = of_type(messages, "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "FAILED"
    # Set aside before the CDK's schema check could quote it (escaped, past its masking).
    assert status["connectionStatus"]["message"] == (
        "'Encountered an error while discovering streams. Error: api_key is not valid: it must be "
        "your Ultravox API key, a string of at least 16 characters without spaces.'"
    )
    assert "unit-test-key-in-a-list" not in out + err
    code, messages, out, err = cli(["discover", "--config", config], capsys)
    assert code == 1
    assert [m["trace"]["error"]["message"] for m in of_type(messages, "TRACE")] == [
        "api_key is not valid: it must be your Ultravox API key, a string of at least 16 characters "
        "without spaces."
    ]
    assert "unit-test-key-in-a-list" not in out + err
    assert api.call_count == 0


@pytest.mark.parametrize("path", ["config.json", "missing.json"])
def test_unreadable_config_file_is_a_config_error_not_a_traceback(api, tmp_path, capsys, path):
    (tmp_path / "config.json").write_text("{not json")
    code, messages, out, err = cli(["read", "--config", str(tmp_path / path), "--catalog", "x.json"], capsys)
    assert code == 1
    [trace] = of_type(messages, "TRACE")
    assert trace["trace"]["error"]["failure_type"] == "config_error"
    assert "config" in trace["trace"]["error"]["message"]
    # Only Airbyte messages on stdout (the trace's stack_trace field aside), nothing on stderr.
    assert len(messages) == len(out.splitlines())
    assert "Traceback" not in err
    assert api.call_count == 0


@pytest.mark.parametrize(
    "api_url",
    [
        "http://localhost:8000/api",
        "http://127.0.0.1:8000/api",
        "http://[::1]:8000/api",
        "https://proxy.example/api",
    ],
)
def test_loopback_http_and_any_https_are_accepted(api, tmp_path, capsys, api_url):
    api.register(url=f"{api_url}/accounts/me/usage/calls", json=usage_body())
    config = write_json(tmp_path / "config.json", make_config(api_url=api_url))
    code, messages, _, _ = cli(["check", "--config", config], capsys)
    assert code == 0
    [status] = of_type(messages, "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "SUCCEEDED"
    assert api.call_count == 1
    assert api.requests[0].headers["X-API-Key"] == API_KEY


def test_minimal_config_uses_defaults(api, tmp_path, capsys):
    api.register(json=usage_body())
    config = write_json(tmp_path / "config.json", {"api_key": API_KEY})
    code, messages, _, _ = cli(["check", "--config", config], capsys)
    assert code == 0
    [status] = of_type(messages, "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "SUCCEEDED"
    # check reads daily's first window: start_date 2024-01-01, window_days 30, the default api_url.
    [request] = api.requests
    assert request.url.startswith("https://api.ultravox.ai/api/accounts/me/usage/calls?")
    assert query(request) == {"fromDate": ["2024-01-01"], "toDate": ["2024-01-30"]}
    assert request.headers["X-API-Key"] == API_KEY

    # allTime asks for the whole configured range: end_date defaults to today (UTC).
    output = run_read({"api_key": API_KEY}, streams=["allTime"])
    assert errors(output) == []
    today = datetime.now(UTC).date().isoformat()
    [_, request] = api.requests
    assert request.url.startswith("https://api.ultravox.ai/api/accounts/me/usage/calls?")
    assert query(request) == {"fromDate": ["2024-01-01"], "toDate": [today]}
    assert records(output, "allTime") == [
        {**usage_body()["allTime"], "durationSeconds": 125.5, "fromDate": "2024-01-01", "toDate": today}
    ]


def test_end_date_today_and_start_today_are_valid(api):
    api.register(json=usage_body())
    today = datetime.now(UTC).date().isoformat()
    output = run_read(make_config(start_date=today, end_date=today))
    assert errors(output) == []
    # One request per stream: allTime, daily and hourly each ask for today.
    assert api.date_ranges() == [(today, today)] * 3


def test_equal_duration_bounds_and_time_of_day_bounds_are_valid(api):
    api.register(json=usage_body())
    config = make_config(
        duration_min=30, duration_max=30, time_of_day_start="09:00:00", time_of_day_end="09:00:00"
    )
    output = run_read(config, streams=["allTime"])
    assert errors(output) == []
