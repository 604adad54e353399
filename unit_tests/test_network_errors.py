"""What each network failure becomes (UsageErrorHandler): a connect timeout or dropped connection is
retried whole and never splits a window; a read timeout splits a window of several days; a TLS
failure or an unusable URL fails at once with a config error that says what is wrong."""

from __future__ import annotations

import pytest
import requests

from unit_tests.conftest import errors, make_config, query, records, run_read, stats, usage_body

WINDOW = make_config(start_date="2025-03-01", end_date="2025-03-04", window_days=4)
RETRY_WAITS = [2, 3, 5, 9, 17, 33]  # the backoff's 1, 2, 4 ... s plus the CDK's own 1 s


def raising(exc: type[requests.RequestException], text: str = ""):
    """A response callback raising `exc` as requests' adapter does: carrying the request."""

    def answer(request, context):
        raise exc(text, request=request)

    return answer


def ranges(api) -> list[tuple[str, str]]:
    return [(query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests]


@pytest.mark.parametrize(
    "exc", [requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError], ids=["connect", "drop"]
)
def test_a_connect_timeout_or_dropped_connection_is_retried_without_splitting(api, sleeps, exc):
    api.register([{"exc": exc}, {"json": usage_body(daily=[{"date": "2025-03-02", **stats()}])}])
    output = run_read(WINDOW, streams=["daily"])
    assert errors(output) == []
    assert ranges(api) == [("2025-03-01", "2025-03-04")] * 2
    assert sleeps == [2]
    # The API's row, then a zero row for each day it left out.
    assert [r["date"] for r in records(output, "daily")] == [
        "2025-03-02",
        "2025-03-01",
        "2025-03-03",
        "2025-03-04",
    ]


@pytest.mark.parametrize(
    "exc", [requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError], ids=["connect", "drop"]
)
def test_a_host_that_stays_unreachable_is_a_transient_error_after_six_retries(api, sleeps, exc):
    api.register(exc=exc)
    output = run_read(WINDOW, streams=["daily"], fails=True)
    assert ranges(api) == [("2025-03-01", "2025-03-04")] * 7
    assert sleeps == RETRY_WAITS
    [(failure_type, message)] = errors(output)
    assert failure_type == "transient_error"
    assert message == (
        "Exhausted available request attempts. Please see logs for more details. Exception: "
        f"Ultravox did not answer ({exc.__name__}: the host could not be reached, timed out or "
        "dropped the connection). The sync will pick up from its last state on the next run."
    )


def test_a_read_timeout_splits_a_window_of_several_days(api, sleeps):
    def answer(request, context):
        low, high = query(request)["fromDate"][0], query(request)["toDate"][0]
        if low != high:
            raise requests.exceptions.ReadTimeout("read timed out", request=request)
        return usage_body(daily=[{"date": low, **stats()}])

    api.register(json=answer)
    output = run_read(WINDOW, streams=["daily"])
    assert errors(output) == []
    assert ranges(api) == [
        ("2025-03-01", "2025-03-04"),
        ("2025-03-01", "2025-03-02"),
        ("2025-03-01", "2025-03-01"),
        ("2025-03-02", "2025-03-02"),
        ("2025-03-03", "2025-03-04"),
        ("2025-03-03", "2025-03-03"),
        ("2025-03-04", "2025-03-04"),
    ]
    assert sorted(r["date"] for r in records(output, "daily")) == [
        "2025-03-01",
        "2025-03-02",
        "2025-03-03",
        "2025-03-04",
    ]
    assert sleeps == []


def test_a_read_timeout_on_one_day_is_retried(api, sleeps):
    api.register([{"exc": requests.exceptions.ReadTimeout}, {"json": usage_body()}])
    output = run_read(make_config(start_date="2025-03-01", end_date="2025-03-01"), streams=["daily"])
    assert errors(output) == []
    assert ranges(api) == [("2025-03-01", "2025-03-01")] * 2
    assert sleeps == [2]


def test_a_tls_failure_is_a_config_error_at_once(api, sleeps):
    api.register(json=raising(requests.exceptions.SSLError, "certificate verify failed: hostname mismatch"))
    output = run_read(WINDOW, streams=["daily"], fails=True)
    assert api.call_count == 1
    assert sleeps == []
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert message == (
        "The TLS connection to api.ultravox.ai failed (certificate verify failed: hostname "
        "mismatch). Check api_url: it must be an https URL whose certificate is valid for its host."
    )


@pytest.mark.parametrize(
    "exc",
    [requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader],
)
def test_a_request_that_cannot_be_sent_is_a_config_error_at_once(api, sleeps, exc):
    api.register(json=raising(exc, "no host supplied"))
    output = run_read(WINDOW, streams=["daily"], fails=True)
    assert api.call_count == 1
    assert sleeps == []
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert message == (
        f"The connector cannot send a request to api.ultravox.ai ({exc.__name__}: no host supplied). "
        "Check api_url."
    )
