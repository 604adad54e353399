"""The connection spec: a valid Draft 7 schema with the issue's config names, documented fields,
the issue's defaults and the tightest validation a schema can express."""

from __future__ import annotations

import logging
from typing import Any

import jsonschema
import pytest

from source_ultravox_usage import SourceUltravoxUsage
from unit_tests.conftest import CONFIG_KEYS, cli, of_type

# The issue's config table, exactly, and the fields beyond it, each one documented in the spec.
EXTRA_FIELDS = {"num_workers", "calls_window_days", "calls_page_size"}
ISSUE_FIELDS = set(CONFIG_KEYS) - EXTRA_FIELDS
UUID = "2f1b1e6c-1c3a-4d5e-9f00-1234567890ab"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return SourceUltravoxUsage().spec(logging.getLogger("test")).connectionSpecification


@pytest.fixture(scope="module")
def properties(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["properties"]


def validator(spec: dict[str, Any]) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(spec, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_spec_is_a_valid_draft7_schema(spec):
    jsonschema.Draft7Validator.check_schema(spec)
    assert spec["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert spec["type"] == "object"


def test_config_names_are_exactly_the_issue_table(properties):
    assert set(properties) == ISSUE_FIELDS | EXTRA_FIELDS


def test_only_the_api_key_is_required(spec):
    assert spec["required"] == ["api_key"]


@pytest.mark.parametrize("name", sorted(ISSUE_FIELDS | EXTRA_FIELDS))
def test_every_field_has_title_description_and_examples(properties, name):
    prop = properties[name]
    assert prop.get("title", "").strip()
    assert prop.get("description", "").strip()
    assert isinstance(prop.get("examples"), list) and prop["examples"]


@pytest.mark.parametrize("name", sorted(ISSUE_FIELDS | EXTRA_FIELDS))
def test_every_example_and_default_is_valid_for_its_field(properties, name):
    prop = properties[name]
    check = jsonschema.Draft7Validator(prop, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    for value in prop["examples"] + ([prop["default"]] if "default" in prop else []):
        assert not list(check.iter_errors(value)), (name, value)


def test_defaults_are_the_issue_defaults(properties):
    assert properties["start_date"]["default"] == "2024-01-01"
    assert properties["lookback_days"]["default"] == 2
    assert properties["api_url"]["default"] == "https://api.ultravox.ai/api"
    # end_date defaults to today (UTC) at run time, so the spec has no fixed default.
    assert "default" not in properties["end_date"]
    window = properties["window_days"]
    assert isinstance(window["default"], int) and 1 <= window["default"] <= 366
    # The calls stream's window and page, from scripts/benchmark.py --ledger (100,000 calls a day):
    # a window a day reads num_workers days at once, and the largest page sends fewest requests.
    assert properties["calls_window_days"]["default"] == 1
    assert properties["calls_page_size"]["default"] == 1000
    # Issue 10: the concurrency stream's bucket size.
    assert properties["concurrency_bucket"]["default"] == "hour"
    assert properties["concurrency_bucket"]["enum"] == ["minute", "5min", "hour", "day"]
    for name in ISSUE_FIELDS - {
        "start_date",
        "lookback_days",
        "api_url",
        "window_days",
        "concurrency_bucket",
    }:
        assert "default" not in properties[name], name


def test_api_key_is_a_secret_and_only_it(properties):
    assert properties["api_key"]["airbyte_secret"] is True
    assert properties["api_key"]["type"] == "string"
    secrets = {name for name, prop in properties.items() if prop.get("airbyte_secret")}
    assert secrets == {"api_key"}
    # The metadata item's "key" holds no secret; it says so for the spec linter.
    assert properties["metadata"]["items"]["properties"]["key"]["airbyte_secret"] is False


def test_api_url_is_hidden(properties):
    assert properties["api_url"]["airbyte_hidden"] is True


def test_field_types_and_bounds(properties):
    assert properties["lookback_days"]["type"] == "integer" and properties["lookback_days"]["minimum"] == 0
    assert properties["window_days"]["type"] == "integer"
    assert (properties["window_days"]["minimum"], properties["window_days"]["maximum"]) == (1, 366)
    assert properties["calls_window_days"]["type"] == properties["calls_page_size"]["type"] == "integer"
    assert (properties["calls_window_days"]["minimum"], properties["calls_window_days"]["maximum"]) == (
        1,
        366,
    )
    assert (properties["calls_page_size"]["minimum"], properties["calls_page_size"]["maximum"]) == (1, 1000)
    for name in ("duration_min", "duration_max"):
        assert properties[name]["type"] == "number" and properties[name]["minimum"] == 0
    assert properties["agent_ids"]["type"] == "array"
    assert properties["agent_ids"]["items"]["format"] == "uuid"
    assert properties["voice_id"]["format"] == "uuid"
    assert properties["search"]["minLength"] == 1
    for name in ("start_date", "end_date"):
        assert properties[name]["format"] == "date"
    assert properties["metadata"]["items"]["required"] == ["key", "value"]


def test_field_orders_are_unique(properties):
    orders = [prop["order"] for prop in properties.values()]
    assert len(orders) == len(set(orders))


GOOD = {
    "api_key": "spec-test-key-0123456789",
    "start_date": "2024-01-01",
    "end_date": "2024-12-31",
    "lookback_days": 0,
    "window_days": 366,
    "agent_ids": [UUID],
    "voice_id": UUID,
    "duration_min": 12.5,
    "duration_max": 3600,
    "metadata": [{"key": "campaign", "value": "spring"}],
    "search": "x",
    "time_of_day_start": "00:00:00",
    "time_of_day_end": "23:59:59",
    "api_url": "https://api.ultravox.ai/api",
}


def test_a_full_config_validates(spec):
    assert not list(validator(spec).iter_errors(GOOD))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("start_date", "2024-1-1"),
        ("start_date", "01/02/2024"),
        ("end_date", "2024-12-31T00:00:00"),
        ("lookback_days", -1),
        ("lookback_days", 1.5),
        ("window_days", 0),
        ("window_days", 367),
        ("calls_window_days", 0),
        ("calls_window_days", 367),
        ("calls_window_days", 1.5),
        ("calls_page_size", 0),
        ("calls_page_size", 1001),
        ("calls_page_size", "500"),
        ("agent_ids", ["not-a-uuid"]),
        ("agent_ids", [UUID, UUID]),
        ("voice_id", "1234"),
        ("duration_min", -1),
        ("duration_max", "60s"),
        ("metadata", [{"key": "a"}]),
        ("metadata", [{"key": "", "value": "b"}]),
        ("metadata", [{"key": "a", "value": "b", "other": "c"}]),
        ("search", ""),
        ("time_of_day_start", "24:00:00"),
        ("time_of_day_start", "9:00:00"),
        ("time_of_day_end", "17:30"),
        ("api_url", "ftp://api.ultravox.ai/api"),
    ],
)
def test_the_schema_rejects(spec, name, value):
    assert list(validator(spec).iter_errors({**GOOD, name: value})), (name, value)


def test_the_schema_checks_only_the_type_of_the_api_key(properties):
    """A schema rule on a string's content (minLength, pattern, ...) makes the CDK quote the value in
    its "Config validation error", and a key with a tab or line break is quoted escaped, past the
    masking of secrets. The connector checks its length and whitespace instead (ApiKeyValidationStrategy),
    without quoting it: test_hostile_config's empty-key, key-with-a-tab and short keys."""
    documentation = {"title", "description", "airbyte_secret", "examples", "order"}
    assert set(properties["api_key"]) - documentation == {"type"}


def test_the_spec_command_prints_the_same_spec(capsys, spec):
    code, messages, _, _ = cli(["spec"], capsys)
    assert code == 0
    [message] = of_type(messages, "SPEC")
    assert message["spec"]["connectionSpecification"] == spec
    assert message["spec"]["documentationUrl"]
