"""The key goes to the api_url origin however the URL is written (SameOriginApiKeyAuthenticator): a host in
capitals, a scheme in capitals, an explicit default port. requests lower-cases the host of the URL
it sends to; the origin compare must too, or every request goes out without X-API-Key."""

from __future__ import annotations

import pytest

from source_ultravox_usage.components import origin
from unit_tests.conftest import API_KEY, errors, make_config, records, run_read, usage_body

CASES = [
    ("https://API.Ultravox.ai/api", "https://api.ultravox.ai/api"),
    ("https://api.ULTRAVOX.AI/api", "https://api.ultravox.ai/api"),
    ("HTTPS://Api.Ultravox.Ai/api", "https://api.ultravox.ai/api"),
    ("https://api.ultravox.ai:443/api", "https://api.ultravox.ai:443/api"),
    ("http://LOCALHOST:8000/api", "http://localhost:8000/api"),
    ("http://LocalHost:8000/api", "http://localhost:8000/api"),
    ("HTTP://127.0.0.1:8000/api", "http://127.0.0.1:8000/api"),
    ("http://LOCALHOST:80/api", "http://localhost:80/api"),
]


@pytest.mark.parametrize(("api_url", "sent_to"), CASES)
def test_the_key_is_sent_whatever_the_case_of_the_host(api, api_url, sent_to):
    api.register(url=f"{sent_to}/accounts/me/usage/calls", json=usage_body())
    output = run_read(make_config(api_url=api_url), streams=["allTime"])
    assert errors(output) == []
    [request] = api.requests
    assert request.url.startswith(f"{sent_to}/accounts/me/usage/calls?")
    assert request.headers["X-API-Key"] == API_KEY
    assert len(records(output, "allTime")) == 1


@pytest.mark.parametrize(
    ("api_url", "location"),
    [
        ("https://API.Ultravox.ai/api", "https://collector.example/api/accounts/me/usage/calls"),
        ("http://LOCALHOST:8000/api", "http://127.0.0.1:8000/api/accounts/me/usage/calls"),
        ("http://LOCALHOST:8000/api", "http://localhost:8001/api/accounts/me/usage/calls"),
    ],
    ids=["other-host", "other-loopback-name", "other-port"],
)
def test_a_redirect_off_a_capitalised_origin_still_drops_the_key(api, api_url, location):
    source = api_url.lower() + "/accounts/me/usage/calls"
    api.register(url=source, status_code=302, headers={"Location": location})
    api.register(url=location, json=usage_body())
    run_read(make_config(api_url=api_url), streams=["allTime"], fails=None)
    first, second = api.requests
    assert first.headers["X-API-Key"] == API_KEY
    assert "X-API-Key" not in second.headers


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://API.ultravox.ai/api", "https://api.ultravox.ai/x", True),
        ("https://api.ultravox.ai:443/", "https://api.ultravox.ai/", True),
        ("http://localhost:80/", "http://LOCALHOST/", True),
        ("https://api.ultravox.ai/", "http://api.ultravox.ai/", False),
        ("https://api.ultravox.ai/", "https://api.ultravox.ai:8443/", False),
        ("https://api.ultravox.ai/", "https://api.ultravox.ai.evil.example/", False),
    ],
)
def test_origin(a, b, same):
    assert (origin(a) == origin(b)) is same
