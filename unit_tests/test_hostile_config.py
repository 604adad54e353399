"""Hostile configs, property-based: any value of any field (wrong types, out of range, malformed
strings, unicode, huge or negative numbers, empty, missing) either works, sending only valid query
parameters, or fails `check` with a FAILED status and `read` with a config error whose message
names the field, before any request is sent; never an unhandled exception or a non-JSON line.

Runs the console script's function in-process (`source_ultravox_usage.run.run`), the user's path,
with requests-mock in place of the network (HTTPAdapter.send)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from source_ultravox_usage.components import is_loopback
from source_ultravox_usage.run import run as cli_run
from unit_tests.conftest import CONFIG_KEYS

API_KEY = "hostile-config-key-0"
BASE: dict[str, Any] = {
    "api_key": API_KEY,
    "start_date": "2025-03-01",
    "end_date": "2025-03-03",
    "window_days": 30,
}
VALID_BODY = {
    "allTime": {
        "totalCount": 2,
        "errorCount": 0,
        "joinedCount": 2,
        "duration": "61.5s",
        "billedMinutes": 1.5,
    },
    "daily": [],
    "hourly": [],
}
FIELDS = CONFIG_KEYS
PAIRS = {
    "start_date": "end_date",
    "end_date": "start_date",
    "duration_min": "duration_max",
    "duration_max": "duration_min",
    "time_of_day_start": "time_of_day_end",
    "time_of_day_end": "time_of_day_start",
}
MISSING = object()  # the field is left out of the config
SHORT_KEY = 16  # the spec's minLength for api_key


# --------------------------------------------------------------------------- harness


class Harness:
    def __init__(self, tmp: Path, capfd: pytest.CaptureFixture[str], api: requests_mock.Adapter) -> None:
        self.tmp, self.capfd, self.api = tmp, capfd, api

    def run(self, command: str, config: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        config_path = self.tmp / "config.json"
        config_path.write_text(json.dumps(config))
        args = [command, "--config", str(config_path)]
        if command == "read":
            catalog_path = self.tmp / "catalog.json"
            catalog_path.write_text(json.dumps(ALL_TIME_CATALOG))
            args += ["--catalog", str(catalog_path)]
        self.capfd.readouterr()
        code = 0
        try:
            cli_run(args)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = self.capfd.readouterr()
        lines = [line for line in out.splitlines() if line.strip()]
        messages = []
        for line in lines:
            try:
                messages.append(json.loads(line))
            except ValueError:
                pytest.fail(f"stdout line is not an Airbyte message: {line[:300]}")
        assert "Traceback" not in err, err[-2000:]
        return code, messages


ALL_TIME_CATALOG = {
    "streams": [
        {
            "stream": {
                "name": "allTime",
                "json_schema": {},
                "supported_sync_modes": ["full_refresh"],
                "source_defined_primary_key": [],
            },
            "sync_mode": "full_refresh",
            "destination_sync_mode": "overwrite",
            "primary_key": [],
        }
    ]
}


@pytest.fixture
def harness(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Harness]:
    adapter = requests_mock.Adapter()
    adapter.register_uri(requests_mock.ANY, requests_mock.ANY, json=VALID_BODY)

    def send(self, request, **kwargs):  # noqa: ANN001 (HTTPAdapter.send's signature)
        return adapter.send(request, **kwargs)

    with mock.patch.object(requests.adapters.HTTPAdapter, "send", send):
        yield Harness(tmp_path, capfd, adapter)


# --------------------------------------------------------------------------- what a valid request is

DURATION = re.compile(r"\d+(\.\d{1,9})?s")  # protobuf Duration JSON: at most nanoseconds
HMS = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d")


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _is_date(value: str) -> bool:
    try:
        return date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def assert_valid_request(request: Any) -> None:
    url = urlsplit(request.url)
    assert url.scheme == "https" or (url.scheme == "http" and is_loopback(url.hostname or "")), request.url
    assert url.path.endswith("/accounts/me/usage/calls")
    assert request.headers.get("X-API-Key"), "no key sent"
    query = parse_qs(url.query, keep_blank_values=True)
    for name, values in query.items():
        if name in ("fromDate", "toDate"):
            assert len(values) == 1 and _is_date(values[0]), (name, values)
        elif name == "agentIds":
            assert values and all(_is_uuid(v) for v in values), values
        elif name == "voiceId":
            assert len(values) == 1 and _is_uuid(values[0]), values
        elif name in ("durationMin", "durationMax"):
            assert len(values) == 1 and DURATION.fullmatch(values[0]), (name, values)
        elif name in ("timeOfDayStart", "timeOfDayEnd"):
            assert len(values) == 1 and HMS.fullmatch(values[0]), (name, values)
        elif name == "search":
            assert len(values) == 1 and values[0], values
        else:
            assert name.startswith("metadata.") and len(name) > len("metadata."), name
    assert query["fromDate"][0] <= query["toDate"][0]
    if "durationMin" in query and "durationMax" in query:
        assert float(query["durationMin"][0][:-1]) <= float(query["durationMax"][0][:-1])


def check_one(harness: Harness, changes: dict[str, Any]) -> bool:
    """The property, for one config: BASE with `changes` (MISSING removes a field)."""
    config = {k: v for k, v in {**BASE, **changes}.items() if v is not MISSING}
    named = set(changes) | {PAIRS[f] for f in changes if f in PAIRS}
    harness.api.reset()
    code, messages = harness.run("check", config)
    statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert len(statuses) == 1, messages[-3:]
    status = statuses[0]
    if status["status"] == "FAILED":
        assert harness.api.request_history == [], f"a request was sent for a refused config {config}"
        assert any(name in status["message"] for name in named), (changes, status["message"])
        code, messages = harness.run("read", config)
        errors = [
            m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
        ]
        assert code == 1 and errors, messages[-3:]
        assert errors[0]["failure_type"] == "config_error", errors[0]
        assert any(name in errors[0]["message"] for name in named), (changes, errors[0]["message"])
        assert harness.api.request_history == []
        assert not [m for m in messages if m["type"] in ("RECORD", "STATE")]
        return False
    assert status["status"] == "SUCCEEDED" and code == 0
    assert len(harness.api.request_history) == 1
    for request in harness.api.request_history:
        assert_valid_request(request)
    harness.api.reset()
    code, messages = harness.run("read", config)
    errors = [m for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert code == 0 and errors == [], (changes, errors[:1])
    assert [m["record"]["stream"] for m in messages if m["type"] == "RECORD"] == ["allTime"]
    for request in harness.api.request_history:
        assert_valid_request(request)
    return True


# --------------------------------------------------------------------------- strategies

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(
        [
            "",
            " ",
            "null",
            "0",
            "-1",
            "1e309",
            "２０２５-03-01",
            "2025-02-30",
            "2025-13-01",
            "2025-3-1",
            "20250301",
            "2025-03-01T00:00:00Z",
            "0000-01-01",
            "9999-12-31",
            "24:00:00",
            "23:59:60",
            "9:00:00",
            "12:00",
            "\x00",
            "\u202e",
            "💥",
            "http://",
            "https://api.ultravox.ai/api?x=1",
            "' OR 1=1 --",
        ]
    ),
)
any_date = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)).map(date.isoformat)
any_time = st.times().map(lambda t: t.strftime("%H:%M:%S"))
a_uuid = st.uuids().map(str)
near_uuid = st.one_of(
    a_uuid,
    a_uuid.map(str.upper),
    a_uuid.map(lambda u: u.replace("-", "")),
    a_uuid.map(lambda u: "{" + u + "}"),
    a_uuid.map(lambda u: u[:-1]),
    a_uuid.map(lambda u: u + " "),
)
seconds = st.one_of(
    st.integers(min_value=-5, max_value=10**12),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3)),
)
near_valid: dict[str, st.SearchStrategy[Any]] = {
    "api_key": st.one_of(
        st.text(min_size=1, max_size=30).filter(lambda s: s == s.strip() and s.isprintable())
    ),
    "start_date": any_date,
    "end_date": any_date,
    "lookback_days": st.integers(min_value=-3, max_value=400),
    "window_days": st.integers(min_value=-3, max_value=400),
    "num_workers": st.integers(min_value=-3, max_value=12),
    "agent_ids": st.lists(near_uuid, max_size=3),
    "voice_id": near_uuid,
    "duration_min": seconds,
    "duration_max": seconds,
    "metadata": st.lists(
        st.fixed_dictionaries(
            {"key": st.text(max_size=8), "value": st.one_of(st.text(max_size=8), st.integers())}
        ),
        max_size=2,
    ),
    "search": st.text(max_size=12),
    "time_of_day_start": any_time,
    "time_of_day_end": any_time,
    "api_url": st.sampled_from(
        [
            "https://api.ultravox.ai/api",
            "https://api.ultravox.ai/api/",
            "https://proxy.example.com:8443/ultravox/api",
            "http://localhost:8000/api",
            "http://127.0.0.1:8000/api",
            "http://[::1]:8000/api",
            "http://api.ultravox.ai/api",
            "http://10.1.2.3/api",
            "ftp://api.ultravox.ai/api",
            "api.ultravox.ai/api",
            "https://user:pass@api.ultravox.ai/api",
            "https://api.ultravox.ai/api#frag",
            "https:///api",
            "https://",
        ]
    ),
}


field_changes = st.dictionaries(
    st.sampled_from(FIELDS + ("unknown_field",)),
    st.just(MISSING) | junk,
    min_size=1,
    max_size=2,
).flatmap(
    lambda picked: st.fixed_dictionaries(
        {
            name: (
                st.just(value) if value is MISSING else st.one_of(st.just(value), near_valid.get(name, junk))
            )
            for name, value in picked.items()
        }
    )
)

HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HYPOTHESIS
@given(changes=field_changes)
def test_any_value_of_any_field_works_or_is_a_config_error_naming_it(harness: Harness, changes) -> None:
    check_one(harness, changes)


# --------------------------------------------------------------------------- fixed cases

WORKING = {
    "minimal": {},
    "every-filter": {
        "agent_ids": ["2f1b1e6c-1c3a-4d5e-9f00-1234567890ab", "9B2C6A1E-77D4-4C1F-A3DE-0123456789AB"],
        "voice_id": "9b2c6a1e-77d4-4c1f-a3de-0123456789ab",
        "duration_min": 30,
        "duration_max": 3600.5,
        "metadata": [{"key": "campaign", "value": "spring 🌸"}, {"key": "a&b=c", "value": ""}],
        "search": "réfund",
        "time_of_day_start": "09:00:00",
        "time_of_day_end": "17:30:00",
    },
    "unknown-field": {"some_future_option": {"nested": [1, 2]}},
    "empty-optional-strings": {"end_date": "", "api_url": ""},
    "empty-lists": {"agent_ids": [], "metadata": []},
    "loopback-http": {"api_url": "http://localhost:8000/api"},
    "bounds": {
        "window_days": 366,
        "num_workers": 10,
        "lookback_days": 0,
        "duration_min": 0,
        "duration_max": 0,
    },
}


@pytest.mark.parametrize("changes", WORKING.values(), ids=WORKING.keys())
def test_valid_configs_work_and_send_only_valid_parameters(harness: Harness, changes: dict[str, Any]) -> None:
    assert check_one(harness, changes)


def test_null_optional_fields_work_or_are_refused_naming_them(harness: Harness) -> None:
    for name in (
        "voice_id",
        "search",
        "agent_ids",
        "metadata",
        "duration_min",
        "time_of_day_end",
        "end_date",
    ):
        check_one(harness, {name: None})


REFUSED = {
    "no-key": {"api_key": MISSING},
    "empty-key": {"api_key": ""},
    "numeric-key": {"api_key": 12345},
    "future-start": {"start_date": "2999-01-01"},
    "end-before-start": {"end_date": "2025-02-28"},
    "impossible-date": {"start_date": "2025-02-30"},
    "datetime-not-date": {"end_date": "2025-03-03T00:00:00Z"},
    "window-0": {"window_days": 0},
    "window-huge": {"window_days": 10**30},
    "window-string": {"window_days": "30"},
    "workers-bool": {"num_workers": True},
    "negative-lookback": {"lookback_days": -1},
    "bad-agent": {"agent_ids": ["not-a-uuid"]},
    "agents-not-a-list": {"agent_ids": "2f1b1e6c-1c3a-4d5e-9f00-1234567890ab"},
    "duplicate-agents": {"agent_ids": ["2f1b1e6c-1c3a-4d5e-9f00-1234567890ab"] * 2},
    "braced-voice": {"voice_id": "{9b2c6a1e-77d4-4c1f-a3de-0123456789ab}"},
    "min-over-max": {"duration_min": 10, "duration_max": 5},
    "negative-duration": {"duration_min": -1},
    "metadata-empty-key": {"metadata": [{"key": "", "value": "v"}]},
    "metadata-extra": {"metadata": [{"key": "k", "value": "v", "op": "eq"}]},
    "empty-search": {"search": ""},
    "time-24": {"time_of_day_start": "24:00:00"},
    "time-end-before-start": {"time_of_day_start": "10:00:00", "time_of_day_end": "09:59:59"},
    "http-remote": {"api_url": "http://api.ultravox.ai/api"},
    "ftp": {"api_url": "ftp://api.ultravox.ai/api"},
    "credentials-in-url": {"api_url": "https://user:pass@api.ultravox.ai/api"},
    "no-host": {"api_url": "https:///api"},
}


@pytest.mark.parametrize("changes", REFUSED.values(), ids=REFUSED.keys())
def test_invalid_configs_are_refused_naming_the_field(harness: Harness, changes: dict[str, Any]) -> None:
    config = {k: v for k, v in {**BASE, **changes}.items() if v is not MISSING}
    code, messages = harness.run("check", config)
    (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert status["status"] == "FAILED", status
    assert not check_one(harness, changes)


@pytest.mark.parametrize("value", [1e-07, 0.1 + 0.2, 2.5e-10], ids=["1e-07", "0.3+eps", "2.5e-10"])
def test_fractional_durations_are_sent_as_valid_seconds_strings(harness: Harness, value: float) -> None:
    check_one(harness, {"duration_min": value})


def test_integral_floats_for_integer_fields_work(harness: Harness) -> None:
    check_one(harness, {"num_workers": 2.0, "window_days": 7.0, "lookback_days": 1.0})


@pytest.mark.parametrize("api_url", ["https://exa mple.com/api", "https://api.ultravox.ai:99999/api"])
def test_api_urls_requests_cannot_use_are_config_errors(harness: Harness, api_url: str) -> None:
    check_one(harness, {"api_url": api_url})


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_durations_are_refused(harness: Harness, value: float) -> None:
    assert not check_one(harness, {"duration_max": value})


@pytest.mark.parametrize("pair", [{"key": "k"}, {"value": "v"}], ids=["no-value", "no-key"])
def test_an_incomplete_metadata_pair_is_refused_naming_metadata(
    harness: Harness, pair: dict[str, str]
) -> None:
    assert not check_one(harness, {"metadata": [pair]})


@pytest.mark.parametrize("key", ["0", "N", "type", "status"])
def test_short_keys_are_refused_rather_than_corrupting_the_output(harness: Harness, key: str) -> None:
    assert not check_one(harness, {"api_key": key})
