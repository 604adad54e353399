"""Every error path of the issue: failure type, message, retry counts, the key kept off other hosts."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from unit_tests.conftest import (
    AGENTS_URL,
    API_KEY,
    CDK_SUMMARY,
    USAGE_URL,
    all_text,
    cli,
    errors,
    make_config,
    of_type,
    query,
    records,
    run_check,
    run_read,
    stats,
    usage_body,
    write_json,
)

ENDPOINT = "https://api.ultravox.ai/api/accounts/me/usage/calls"
NO_WAIT = {"Retry-After": "0"}
OK = {"json": usage_body(all_time=stats(total=9))}
NETWORK_ERRORS = [
    requests.exceptions.ConnectionError,
    requests.exceptions.ConnectTimeout,
    requests.exceptions.ReadTimeout,
]


def read_all_time(**config):
    return run_read(make_config(**config), streams=["allTime"], fails=True)


def failures(output):
    """(failure_type, message, internal_message) of every error trace but the CDK's closing summary."""
    return [
        (error.failure_type.value, error.message, error.internal_message)
        for error in (m.trace.error for m in output.errors)
        if error.internal_message != CDK_SUMMARY
    ]


def refused(quoted):
    return f"Ultravox refused the request ({quoted}). Check the connector's filters and dates."


def rejected(quoted):
    return (
        f"Ultravox rejected the API key ({quoted}). "
        "Check that api_key is a current API key of your Ultravox account."
    )


# The shapes in which Django REST Framework renders an error, and the text a message quotes.
DRF_BODIES = [
    pytest.param(
        {"json": {"detail": "fromDate: Enter a valid date."}}, "fromDate: Enter a valid date.", id="detail"
    ),
    pytest.param({"json": ["fromDate: Enter a valid date."]}, "fromDate: Enter a valid date.", id="list"),
    pytest.param(
        {"json": {"fromDate": ["Enter a valid date."]}}, "fromDate: Enter a valid date.", id="fields"
    ),
    pytest.param(
        {"json": {"metadata": {"tier": ["Not a valid string."]}, "toDate": ["Enter a date.", "Too early."]}},
        "metadata.tier: Not a valid string.; toDate: Enter a date.; toDate: Too early.",
        id="nested-fields",
    ),
    pytest.param(
        {"json": {"non_field_errors": ["fromDate must be before toDate."]}},
        "fromDate must be before toDate.",
        id="non-field-errors",
    ),
    pytest.param(
        {"text": "<p>Bad Request</p>\r\n\t(fromDate)\n"}, "<p>Bad Request</p> (fromDate)", id="not-json"
    ),
    pytest.param({"text": ""}, "no detail given", id="empty"),
    pytest.param({"json": ["x" * 600]}, "x" * 499 + "\u2026", id="very-long"),
    pytest.param({"json": [f"Key {API_KEY} may not."]}, "Key **** may not.", id="key-echoed"),
    # Masked before it is cut: not even the key's first characters are quoted.
    pytest.param({"json": ["x" * 497 + API_KEY]}, "x" * 497 + "**\u2026", id="key-at-the-cut"),
]


# --------------------------------------------------------------------------- 401 / 403


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    ("body", "detail"),
    [({"detail": "Invalid API key."}, "Invalid API key."), (None, "no detail given")],
    ids=["detail", "no-body"],
)
def test_rejected_key_is_a_config_error(api, status, body, detail):
    api.register(status_code=status, **({"json": body} if body else {"text": ""}))
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert message.startswith("Ultravox rejected the API key")
    assert detail in message
    assert "api_key" in message
    # Not retried.
    assert api.call_count == 1


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("body", [{"detail": "Key too long"}, ["Key too long"]], ids=["detail", "list"])
def test_a_rejected_key_whose_detail_says_too_long_fails_and_is_not_split(api, status, body):
    """The filters keep their order of priority: a rejected key fails at once even when its detail
    happens to say "too long", the words that split a refused window."""
    api.register(status_code=status, json=body)
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["daily"], fails=True)
    assert failures(output) == [
        ("config_error", rejected("Key too long"), f"{status}: {rejected('Key too long')}")
    ]
    assert [(query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests] == [
        ("2025-03-01", "2025-03-04")
    ]


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(("body", "quoted"), DRF_BODIES)
def test_a_rejected_key_quotes_the_api_in_any_drf_shape(api, status, body, quoted):
    api.register(status_code=status, **body)
    output = read_all_time()
    assert failures(output) == [("config_error", rejected(quoted), f"{status}: {rejected(quoted)}")]
    assert api.call_count == 1
    assert API_KEY not in all_text(output)


@pytest.mark.parametrize("status", [400, 422])
@pytest.mark.parametrize(("body", "quoted"), DRF_BODIES)
def test_a_refused_request_quotes_the_api_in_any_drf_shape(api, sleeps, status, body, quoted):
    api.register(status_code=status, **body)
    output = read_all_time()
    assert failures(output) == [("config_error", refused(quoted), f"{status}: {refused(quoted)}")]
    assert api.call_count == 1
    assert API_KEY not in all_text(output)


@pytest.mark.parametrize("status", [402, 405, 409, 410, 413, 415, 418, 422, 451, 499])
def test_any_other_4xx_fails_at_once_as_a_config_error_quoting_the_api(api, sleeps, status):
    """Nothing changes on a retry: one request, no wait, the API's words and the connector's advice."""
    api.register(status_code=status, json={"detail": f"Refused with {status}."})
    output = read_all_time()
    message = refused(f"Refused with {status}.")
    assert failures(output) == [("config_error", message, f"{status}: {message}")]
    assert api.call_count == 1
    assert sleeps == []


def test_a_422_on_a_window_makes_exactly_one_request(api, sleeps):
    api.register(status_code=422, json={"toDate": ["Ensure this value is after fromDate."]})
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["daily"], fails=True)
    message = refused("toDate: Ensure this value is after fromDate.")
    assert failures(output) == [("config_error", message, f"422: {message}")]
    assert api.date_ranges() == [("2025-03-01", "2025-03-04")]
    assert sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_not_sent_again_in_the_same_sync(api, status):
    """The CDK goes on reading a stream's other windows after one failed: each stream sends the
    rejected key once (num_workers=1, so none is already in flight), then refuses to send it."""
    api.register(status_code=status, json={"detail": "Invalid API key."})
    output = run_read(make_config(end_date="2025-03-20", window_days=2, num_workers=1), fails=True)
    assert errors(output)
    assert {e[0] for e in errors(output)} == {"config_error"}
    assert api.call_count == 3
    assert sorted(query(r)["toDate"][0] for r in api.requests) == ["2025-03-02", "2025-03-02", "2025-03-20"]
    refused = [message for _, message in errors(output) if "earlier in this sync" in message]
    assert refused and all(f"(HTTP {status})" in message for message in refused)


CHECK_REJECTED = (
    "Stream daily is not available: Ultravox rejected the API key (Invalid API key.). "
    "Check that api_key is a current API key of your Ultravox account."
)


@pytest.mark.parametrize("status", [401, 403])
def test_check_with_a_rejected_key_is_a_failed_status_not_a_crash(api, tmp_path, capsys, status):
    api.register(status_code=status, json={"detail": "Invalid API key."})
    config = write_json(tmp_path / "config.json", make_config())
    code, messages, out, err = cli(["check", "--config", config], capsys)
    assert code == 0
    [status_message] = of_type(messages, "CONNECTION_STATUS")
    assert status_message["connectionStatus"]["status"] == "FAILED"
    # check reads daily's first window; CheckStream prefixes "Stream daily is not available: " and
    # the CDK quotes the whole message.
    assert status_message["connectionStatus"]["message"].strip("'") == CHECK_REJECTED
    assert of_type(messages, "TRACE") == []
    assert api.date_ranges() == [("2025-03-01", "2025-03-05")]

    output = run_check(make_config(), tmp_path)
    [status_message] = output.connection_status_messages
    assert status_message.connectionStatus.status.value == "FAILED"
    assert status_message.connectionStatus.message.strip("'") == CHECK_REJECTED


@pytest.mark.parametrize(
    ("window_days", "window"),
    [(30, ("2025-03-01", "2025-03-05")), (2, ("2025-03-01", "2025-03-02"))],
    ids=["range-in-one-window", "first-of-three-windows"],
)
def test_check_succeeds_with_one_request(api, tmp_path, capsys, window_days, window):
    """check reads daily's first window only: start_date .. start_date + window_days - 1."""
    api.register(**OK)
    config = write_json(tmp_path / "config.json", make_config(window_days=window_days))
    code, messages, _, _ = cli(["check", "--config", config], capsys)
    assert code == 0
    [status_message] = of_type(messages, "CONNECTION_STATUS")
    assert status_message["connectionStatus"]["status"] == "SUCCEEDED"
    assert api.call_count == 1
    assert api.date_ranges() == [window]


# --------------------------------------------------------------------------- 400 / 404


def test_400_is_a_config_error_carrying_the_detail(api):
    api.register(status_code=400, json={"detail": "fromDate must be before toDate"})
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert "fromDate must be before toDate" in message
    assert api.call_count == 1


def test_400_with_field_errors_carries_them(api):
    api.register(status_code=400, json={"voiceId": ["Must be a valid UUID."]})
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert "Must be a valid UUID." in message


def test_400_on_a_window_is_a_config_error_too(api):
    api.register(status_code=400, json={"detail": "Invalid timeOfDayStart"})
    output = run_read(make_config(), streams=["daily"], fails=True)
    assert ("config_error", errors(output)[0][1]) == errors(output)[0]
    assert "Invalid timeOfDayStart" in errors(output)[0][1]


def test_404_names_the_path(api):
    api.register(status_code=404, text="<html>Not Found</html>")
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "config_error"
    assert "404" in message
    assert "/api/accounts/me/usage/calls" in message
    assert "api_url" in message
    assert api.call_count == 1


# --------------------------------------------------------------------------- 429


def test_429_with_retry_after_zero_then_success(api):
    api.register([{"status_code": 429, "headers": NO_WAIT}, OK])
    started = time.monotonic()
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == 2
    assert [r["totalCount"] for r in records(output, "allTime")] == [9]
    # Retry-After: 0 still waits the strategy's minimum (0.5 s), not a tight loop.
    assert time.monotonic() - started >= 0.5


def test_429_with_an_http_date_in_the_past_is_retried(api, sleeps):
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    api.register([{"status_code": 429, "headers": {"Retry-After": past}}, OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == 2
    assert sleeps == [1.5]


def test_429_with_an_http_date_waits_until_then(api, sleeps):
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    api.register([{"status_code": 429, "headers": {"Retry-After": later}}, OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == 2
    [slept] = sleeps
    assert 28 <= slept <= 31 + 1  # HTTP dates have whole seconds; plus the CDK's second


def test_429_asking_for_a_wait_beyond_the_limit_fails_fast_as_transient(api):
    api.register(status_code=429, headers={"Retry-After": "86400"})
    started = time.monotonic()
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "transient_error"
    assert "86400" in message
    assert time.monotonic() - started < 10
    assert api.call_count == 1


def test_persistent_429_is_a_transient_error_after_bounded_retries(api, sleeps):
    api.register(status_code=429, headers=NO_WAIT)
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "transient_error"
    assert "rate limit" in message.lower()
    assert api.call_count == 7  # 1 + max_retries (6)
    # Retry-After: 0 -> the strategy's 0.5 s minimum, plus the CDK's extra second.
    assert sleeps == [1.5] * 6


def test_429_without_retry_after_backs_off_exponentially(api, sleeps):
    api.register([{"status_code": 429}] * 3 + [OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == 4
    assert sleeps == [1 + 1, 2 + 1, 4 + 1]


@pytest.mark.parametrize(("header", "wait"), [("3", 3), ("2.5", 2.5), (" 7 ", 7), ("0.1", 0.5), ("soon", 1)])
def test_429_retry_after_seconds_are_honoured(api, sleeps, header, wait):
    api.register([{"status_code": 429, "headers": {"Retry-After": header}}, OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert sleeps == [wait + 1]


# --------------------------------------------------------------------------- 408


def test_408_is_retried_then_success(api, sleeps):
    api.register([{"status_code": 408, "headers": NO_WAIT, "json": ["Request timed out."]}, OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == 2
    assert sleeps == [1.5]
    assert [r["totalCount"] for r in records(output, "allTime")] == [9]


def test_persistent_408_is_a_transient_error_after_bounded_retries(api, sleeps):
    api.register(status_code=408, headers=NO_WAIT, json={"detail": "Request timed out."})
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "transient_error"
    assert message == (
        "Exhausted available request attempts. Please see logs for more details. Exception: "
        f"Ultravox answered 408 Request Timeout on {ENDPOINT}."
    )
    assert api.call_count == 7  # 1 + max_retries (6)


# --------------------------------------------------------------------------- 5xx, timeouts, drops


@pytest.mark.parametrize("statuses", [[500], [502, 503]], ids=["500", "502-503"])
def test_server_errors_then_success(api, sleeps, statuses):
    api.register([*({"status_code": s, "headers": NO_WAIT} for s in statuses), OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == len(statuses) + 1
    assert sleeps == [1.5] * len(statuses)
    assert [r["totalCount"] for r in records(output, "allTime")] == [9]


def test_persistent_500_is_a_transient_error_after_bounded_retries(api, sleeps):
    api.register(status_code=500, text="Internal Server Error")
    output = read_all_time()
    [(failure_type, message)] = errors(output)
    assert failure_type == "transient_error"
    assert "server error" in message
    assert api.call_count == 7  # 1 + max_retries (6)
    assert sleeps == [2, 3, 5, 9, 17, 33]  # 1, 2, 4, 8, 16, 32 s backoff + the CDK's second


@pytest.mark.parametrize("status", [500, 502, 503])
def test_persistent_5xx_on_a_window_is_a_transient_error(api, sleeps, status):
    api.register(status_code=status, headers=NO_WAIT)
    output = run_read(make_config(), streams=["daily"], fails=True)
    assert [e[0] for e in errors(output)] == ["transient_error"]
    assert api.call_count == 7
    assert len(sleeps) == 6


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError,
        requests.exceptions.ConnectTimeout,
        requests.exceptions.ReadTimeout,
    ],
)
def test_persistent_timeouts_and_dropped_connections_are_a_transient_error(api, sleeps, exc):
    api.register(exc=exc)
    output = read_all_time()
    assert api.call_count == 7
    assert sleeps == [2, 3, 5, 9, 17, 33]
    [(failure_type, _)] = errors(output)
    assert failure_type == "transient_error"


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectTimeout,
        requests.exceptions.ConnectionError,
        requests.exceptions.ReadTimeout,
    ],
)
def test_timeouts_and_dropped_connections_are_retried(api, exc):
    api.register([{"exc": exc}, OK])
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert api.call_count == 2
    assert [r["totalCount"] for r in records(output, "allTime")] == [9]


def test_requests_have_a_timeout(api):
    api.register(**OK)
    run_read(make_config(), streams=["allTime"])
    [request] = api.requests
    assert request.timeout is not None
    connect, read = (
        request.timeout if isinstance(request.timeout, tuple) else (request.timeout, request.timeout)
    )
    assert 0 < connect <= 60 and 0 < read <= 600


# --------------------------------------------------------------------------- 200 with the wrong body


WRONG_BODIES = [
    pytest.param({"text": "<!doctype html><html><body>Sign in</body></html>"}, id="html"),
    pytest.param({"json": {"results": []}}, id="results-object"),
    pytest.param({"json": []}, id="json-list"),
    pytest.param({"json": [usage_body()]}, id="list-of-usage"),
    pytest.param({"text": ""}, id="empty"),
    pytest.param({"json": {"allTime": stats(), "daily": []}}, id="no-hourly"),
    pytest.param({"json": {"detail": "ok"}}, id="detail-only"),
    pytest.param({"text": '{"allTime": {"totalCount": 1'}, id="truncated"),
]


@pytest.mark.parametrize("stream", ["allTime", "daily", "hourly"])
@pytest.mark.parametrize("response", WRONG_BODIES)
def test_a_200_that_is_not_the_usage_object_is_a_system_error_naming_the_endpoint(api, stream, response):
    api.register(status_code=200, **response)
    output = run_read(make_config(), streams=[stream], fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert ENDPOINT in message
    assert "fromDate" not in message  # the endpoint, not the full URL with the query
    assert records(output, stream) == []
    assert api.call_count == 1


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "location",
    [
        "https://collector.example/api/accounts/me/usage/calls",
        "http://api.ultravox.ai/api/accounts/me/usage/calls",
        "https://api.ultravox.ai:8443/api/accounts/me/usage/calls",
        "https://ultravox.ai.evil.example/api/accounts/me/usage/calls",
    ],
    ids=["other-host", "http-downgrade", "other-port", "lookalike-host"],
)
def test_a_redirect_off_the_api_origin_carries_no_key(api, location):
    api.register(status_code=302, headers={"Location": location})
    api.register(url=location, **OK)
    run_read(make_config(), streams=["allTime"], fails=None)
    assert [r.url.split("?")[0] for r in api.requests] == [USAGE_URL, location]
    first, second = api.requests
    assert first.headers["X-API-Key"] == API_KEY
    assert "X-API-Key" not in second.headers
    assert all(API_KEY not in value for value in second.headers.values())
    assert API_KEY not in second.url


def test_a_redirect_within_the_api_origin_keeps_the_key(api):
    target = "https://api.ultravox.ai/api/v2/accounts/me/usage/calls"
    api.register(status_code=301, headers={"Location": target})
    api.register(url=target, **OK)
    output = run_read(make_config(), streams=["allTime"])
    assert errors(output) == []
    assert [r.headers.get("X-API-Key") for r in api.requests] == [API_KEY, API_KEY]


# --------------------------------------------------------------------------- windows too large


def split_api(api, status, body):
    """Refuse (status, body) every window longer than one day except 03-01..03-02; a str body is
    sent as it is, not as JSON."""

    def answer(request, context):
        q = query(request)
        low, high = q["fromDate"][0], q["toDate"][0]
        if low != high and (low, high) != ("2025-03-01", "2025-03-02"):
            context.status_code = status
            context.headers["Retry-After"] = "0"
            return body if isinstance(body, str) else json.dumps(body)
        days = usage_body(daily=[{"date": low, **stats()}], hourly=[{"date": high, "hour": 1, **stats()}])
        return json.dumps(days)

    api.register(text=answer)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (504, {"detail": "Gateway Timeout"}),
        (400, {"detail": "Date range too large"}),
        (400, ["Date range too large."]),
        (400, {"toDate": ["Range too long."]}),
        (400, {"non_field_errors": ["Date range too LARGE"]}),
        (422, {"query": {"range": ["Too long a range."]}}),
        (400, "Date range too large"),
    ],
    ids=[
        "504",
        "400-too-large",
        "400-list",
        "400-fields",
        "400-non-field-errors",
        "422-nested",
        "400-not-json",
    ],
)
def test_a_window_the_api_refuses_as_too_large_is_split_in_halves(api, sleeps, status, body):
    split_api(api, status, body)
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["daily"])
    assert errors(output) == []
    assert [(query(r)["fromDate"][0], query(r)["toDate"][0]) for r in api.requests] == [
        ("2025-03-01", "2025-03-04"),
        ("2025-03-01", "2025-03-02"),
        ("2025-03-03", "2025-03-04"),
        ("2025-03-03", "2025-03-03"),
        ("2025-03-04", "2025-03-04"),
    ]
    # 2025-03-02: the zero row of the day the 03-01..03-02 answer left out.
    assert [r["date"] for r in records(output, "daily")] == [
        "2025-03-01",
        "2025-03-02",
        "2025-03-03",
        "2025-03-04",
    ]
    assert sleeps == []


def test_a_plain_400_is_not_split(api):
    api.register(status_code=400, json={"detail": "Invalid voiceId"})
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["daily"], fails=True)
    assert errors(output)[0][0] == "config_error"
    assert api.call_count == 1


@pytest.mark.parametrize("status", [413, 414, 431])
def test_a_proxy_page_saying_too_large_is_a_refused_request_not_split(api, sleeps, status):
    """A request too large for a proxy (many agent_ids) is no date range: splitting the window
    cannot shrink it, so it fails at once quoting the page."""
    page = f"<html><head><title>{status} Request-URI Too Large</title></head><body>nginx</body></html>"
    api.register(status_code=status, text=page, headers={"Content-Type": "text/html"})
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["daily"], fails=True)
    message = refused(page)
    assert failures(output) == [("config_error", message, f"{status}: {message}")]
    assert api.call_count == 1
    assert sleeps == []


def test_an_error_body_nested_deeper_than_drf_nests_is_quoted_without_a_traceback(api):
    body = "[" * 1000 + '"deep"' + "]" * 1000
    api.register(status_code=400, text=body)
    output = read_all_time()
    message = refused("(an error body nested too deeply to quote)")
    assert failures(output) == [("config_error", message, f"400: {message}")]


def test_a_504_blip_on_a_one_day_window_is_retried(api, sleeps):
    api.register([{"status_code": 504, "headers": NO_WAIT}, {"json": usage_body()}])
    output = run_read(
        make_config(start_date="2025-03-01", end_date="2025-03-01", window_days=1), streams=["daily"]
    )
    assert errors(output) == []
    assert api.call_count == 2


def test_a_persistent_504_on_a_one_day_window_is_retried_then_transient(api, sleeps):
    api.register(status_code=504, headers=NO_WAIT)
    output = run_read(
        make_config(start_date="2025-03-01", end_date="2025-03-01", window_days=1),
        streams=["daily"],
        fails=True,
    )
    assert [e[0] for e in errors(output)] == ["transient_error"]
    assert api.call_count == 7


# --------------------------------------------------------------------------- successes are never errors


def test_a_200_whose_body_says_too_long_is_not_split(api):
    """Only error answers split: a 200 that is not the usage object fails as one, whatever it says."""
    api.register(json={"detail": "Date range too long"})
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["daily"], fails=True)
    message = (
        f"Ultravox answered {ENDPOINT} with a body the connector does not expect (it expects a JSON "
        "object with allTime, daily and hourly): its top-level keys are ['detail']."
    )
    assert failures(output) == [("system_error", message, message)]
    assert api.date_ranges() == [("2025-03-01", "2025-03-04")]


def test_an_agent_named_too_long_calls_syncs_normally(api):
    agent = {"agentId": "0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01", "name": "Too long calls"}
    api.register(
        url=AGENTS_URL,
        json=[{"agent": agent, "usage": [{"date": "2025-03-02", "calls": 3, "billedMinutes": 4.5}]}],
    )
    output = run_read(make_config(end_date="2025-03-04", window_days=4), streams=["agentDaily"])
    assert errors(output) == []
    assert records(output, "agentDaily") == [
        {
            "agentId": agent["agentId"],
            "agentName": "Too long calls",
            "date": "2025-03-02",
            "calls": 3,
            "billedMinutes": 4.5,
        }
    ]
    assert api.date_ranges() == [("2025-03-01", "2025-03-04")]
