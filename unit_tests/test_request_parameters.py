"""Every config field to its exact query parameters, and none when unset."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from unit_tests.conftest import API_KEY, USAGE_URL, errors, make_config, query, run_read, usage_body

AGENT_A = "2f1b1e6c-1c3a-4d5e-9f00-1234567890ab"
AGENT_B = "9B2C6A1E-77D4-4C1F-A3DE-0123456789AB".lower()
VOICE = "9b2c6a1e-77d4-4c1f-a3de-0123456789ab"
DATES = {"fromDate": ["2025-03-01"], "toDate": ["2025-03-05"]}


def only_request(api, **config_overrides):
    api.register(json=usage_body())
    output = run_read(make_config(**config_overrides), streams=["allTime"])
    assert errors(output) == []
    [request] = api.requests
    return request


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, {}, id="nothing-set"),
        pytest.param({"agent_ids": [AGENT_A]}, {"agentIds": [AGENT_A]}, id="one-agent"),
        pytest.param(
            {"agent_ids": [AGENT_A, AGENT_B]}, {"agentIds": [AGENT_A, AGENT_B]}, id="agents-repeated"
        ),
        pytest.param({"voice_id": VOICE}, {"voiceId": [VOICE]}, id="voice"),
        pytest.param({"duration_min": 30}, {"durationMin": ["30s"]}, id="duration-min-int"),
        pytest.param({"duration_min": 12.5}, {"durationMin": ["12.5s"]}, id="duration-min-float"),
        pytest.param({"duration_min": 30.0}, {"durationMin": ["30s"]}, id="duration-min-whole-float"),
        pytest.param({"duration_min": 0}, {"durationMin": ["0s"]}, id="duration-min-zero"),
        pytest.param({"duration_max": 3600}, {"durationMax": ["3600s"]}, id="duration-max"),
        pytest.param({"duration_max": 1e6}, {"durationMax": ["1000000s"]}, id="duration-no-exponent"),
        pytest.param({"duration_max": 0.1}, {"durationMax": ["0.1s"]}, id="duration-tenth"),
        pytest.param({"duration_min": 1e-07}, {"durationMin": ["0.0000001s"]}, id="duration-tiny"),
        pytest.param(
            {"duration_min": 30, "duration_max": 90.25},
            {"durationMin": ["30s"], "durationMax": ["90.25s"]},
            id="duration-both",
        ),
        pytest.param(
            {"metadata": [{"key": "campaign", "value": "Spring Sale"}]},
            {"metadata.campaign": ["Spring Sale"]},
            id="metadata-one",
        ),
        pytest.param(
            {"metadata": [{"key": "campaign", "value": "spring"}, {"key": "Region", "value": "EU-West"}]},
            {"metadata.campaign": ["spring"], "metadata.Region": ["EU-West"]},
            id="metadata-each",
        ),
        pytest.param(
            {"metadata": [{"key": "b.c", "value": ""}]}, {"metadata.b.c": [""]}, id="metadata-empty-value"
        ),
        pytest.param(
            {"metadata": [{"key": "q", "value": 'it\'s "quoted" {x}'}]},
            {"metadata.q": ['it\'s "quoted" {x}']},
            id="metadata-quotes",
        ),
        # The query is a dict rendered by Jinja and read back by the CDK: values that could break
        # that round trip come through exactly.
        pytest.param(
            {"metadata": [{"key": "path", "value": "C:\\temp\\n"}]},
            {"metadata.path": ["C:\\temp\\n"]},
            id="metadata-backslashes",
        ),
        pytest.param(
            {"metadata": [{"key": "région", "value": "Zürich\u2028Genève"}]},
            {"metadata.région": ["Zürich\u2028Genève"]},
            id="metadata-unicode-and-line-separator",
        ),
        pytest.param(
            {"metadata": [{"key": "tpl", "value": "{{ config['api_key'] }}"}]},
            {"metadata.tpl": ["{{ config['api_key'] }}"]},
            id="metadata-jinja-looking-value-not-rendered",
        ),
        pytest.param(
            {"metadata": [{"key": "k", "value": "None"}]}, {"metadata.k": ["None"]}, id="value-None"
        ),
        pytest.param({"search": 'say "hi" \\ it\'s'}, {"search": ['say "hi" \\ it\'s']}, id="search-quotes"),
        pytest.param({"search": "Refund & Return"}, {"search": ["Refund & Return"]}, id="search"),
        pytest.param({"time_of_day_start": "09:00:00"}, {"timeOfDayStart": ["09:00:00"]}, id="tod-start"),
        pytest.param({"time_of_day_end": "17:30:59"}, {"timeOfDayEnd": ["17:30:59"]}, id="tod-end"),
    ],
)
def test_config_field_to_query_parameters(api, overrides, expected):
    request = only_request(api, **overrides)
    assert query(request) == {**DATES, **expected}


def test_all_filters_together(api):
    request = only_request(
        api,
        agent_ids=[AGENT_A, AGENT_B],
        voice_id=VOICE,
        duration_min=12.5,
        duration_max=600,
        metadata=[{"key": "team", "value": "support"}],
        search="x",
        time_of_day_start="08:00:00",
        time_of_day_end="18:00:00",
    )
    assert query(request) == {
        **DATES,
        "agentIds": [AGENT_A, AGENT_B],
        "voiceId": [VOICE],
        "durationMin": ["12.5s"],
        "durationMax": ["600s"],
        "metadata.team": ["support"],
        "search": ["x"],
        "timeOfDayStart": ["08:00:00"],
        "timeOfDayEnd": ["18:00:00"],
    }


def test_raw_query_has_no_quotes_or_brackets(api):
    """Jinja can render numbers as quoted strings or lists as their repr: look at the raw bytes."""
    request = only_request(api, duration_min=12.5, duration_max=30, agent_ids=[AGENT_A])
    raw = urlsplit(request.url).query
    assert "durationMin=12.5s" in raw.split("&")
    assert "durationMax=30s" in raw.split("&")
    assert f"agentIds={AGENT_A}" in raw.split("&")
    for bad in ("%22", "%27", "%5B", '"', "'", "["):
        assert bad not in raw


@pytest.mark.parametrize(
    "overrides",
    [
        {"agent_ids": []},
        {"metadata": []},
    ],
)
def test_empty_lists_send_no_parameter(api, overrides):
    assert query(only_request(api, **overrides)) == DATES


@pytest.mark.parametrize("streams", [["daily"], ["hourly"], ["daily", "hourly"]], ids="+".join)
def test_window_requests_carry_the_same_filters(api, streams):
    api.register(json=usage_body())
    config = make_config(
        voice_id=VOICE,
        duration_min=30,
        metadata=[{"key": "k", "value": "v"}],
        window_days=2,
        end_date="2025-03-04",
    )
    output = run_read(config, streams=streams)
    assert errors(output) == []
    filters = {"voiceId": [VOICE], "durationMin": ["30s"], "metadata.k": ["v"]}
    queries = sorted((query(r) for r in api.requests), key=lambda q: q["fromDate"])
    # Each window once per selected stream (daily and hourly send their own), all with the filters.
    assert queries == [
        *[{"fromDate": ["2025-03-01"], "toDate": ["2025-03-02"], **filters}] * len(streams),
        *[{"fromDate": ["2025-03-03"], "toDate": ["2025-03-04"], **filters}] * len(streams),
    ]


def test_api_key_only_in_the_header(api):
    request = only_request(api)
    assert request.headers["X-API-Key"] == API_KEY
    assert API_KEY not in request.url
    assert request.url.startswith(USAGE_URL + "?")
    assert request.method == "GET"
    # No other header carries it either (no Authorization, no cookie).
    assert [name for name, value in request.headers.items() if API_KEY in value] == ["X-API-Key"]


def test_custom_api_url(api):
    base = "http://127.0.0.1:8765/api"
    api.register(url=f"{base}/accounts/me/usage/calls", json=usage_body())
    output = run_read(make_config(api_url=base), streams=["allTime"])
    assert errors(output) == []
    [request] = api.requests
    assert request.url.startswith("http://127.0.0.1:8765/api/accounts/me/usage/calls?")
    assert request.headers["X-API-Key"] == API_KEY


def test_api_url_with_trailing_slash(api):
    api.register(json=usage_body())
    output = run_read(make_config(api_url="https://api.ultravox.ai/api/"), streams=["allTime"])
    assert errors(output) == []
    [request] = api.requests
    assert urlsplit(request.url).path == "/api/accounts/me/usage/calls"
