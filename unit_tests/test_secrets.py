"""The API key never appears in any output: messages, logs, traces, stack traces, stderr, URLs."""

from __future__ import annotations

import pytest

from unit_tests.conftest import (
    API_KEY,
    all_text,
    catalog_dict,
    cli,
    errors,
    make_config,
    run_check,
    run_read,
    usage_body,
    write_json,
)

# A server that echoes what it was sent, as some error pages do.
ECHO = f"Invalid API key {API_KEY}"

ERROR_PATHS = [
    pytest.param([{"status_code": 401, "json": {"detail": "Invalid API key."}}], id="401"),
    pytest.param([{"status_code": 403, "json": {"detail": ECHO}}], id="403-echo"),
    pytest.param([{"status_code": 400, "json": {"detail": ECHO}}], id="400-echo"),
    pytest.param([{"status_code": 404, "text": ECHO}], id="404-echo"),
    # The CDK would quote the answer unmasked in the trace's internal_message.
    pytest.param([{"status_code": 405, "json": {"detail": ECHO}}], id="405-echo"),
    pytest.param([{"status_code": 400, "json": [ECHO]}], id="400-list-echo"),
    pytest.param(
        [{"status_code": 422, "json": {"non_field_errors": [ECHO], "key": [API_KEY]}}], id="422-fields-echo"
    ),
    pytest.param([{"status_code": 200, "text": f"<html>{ECHO}</html>"}], id="html-echo"),
    pytest.param([{"status_code": 200, "json": {"results": [], "key": API_KEY}}], id="wrong-shape-echo"),
    pytest.param(
        [{"status_code": 500, "headers": {"Retry-After": "0"}, "text": ECHO}, {"json": usage_body()}],
        id="500-echo-then-ok",
    ),
    pytest.param(
        [
            {"status_code": 429, "headers": {"Retry-After": "0"}, "json": {"detail": ECHO}},
            {"json": usage_body()},
        ],
        id="429-echo-then-ok",
    ),
    pytest.param(
        [{"status_code": 302, "headers": {"Location": f"https://other.example/?k={API_KEY}"}}],
        id="redirect-echo",
    ),
]


@pytest.mark.parametrize("debug", [False, True], ids=["info", "debug"])
@pytest.mark.parametrize("responses", ERROR_PATHS)
def test_key_absent_from_in_process_read_output(api, sleeps, capsys, responses, debug):
    api.register(responses)
    api.register(url="https://other.example/", json=usage_body())
    output = run_read(make_config(), streams=["allTime"], fails=None, debug=debug)
    captured = capsys.readouterr()
    assert api.call_count >= 1
    assert api.requests[0].headers["X-API-Key"] == API_KEY  # the key was really used
    for name, text in {
        "messages": all_text(output),
        "stdout": captured.out,
        "stderr": captured.err,
    }.items():
        assert API_KEY not in text, f"the API key leaked into {name}"
    for request in api.requests[1:]:
        if not request.url.startswith("https://api.ultravox.ai/"):
            assert "X-API-Key" not in request.headers


@pytest.mark.parametrize("responses", ERROR_PATHS)
def test_key_absent_from_cli_read_and_check_output(api, sleeps, tmp_path, capsys, responses):
    api.register(responses)
    api.register(url="https://other.example/", json=usage_body())
    config = write_json(tmp_path / "config.json", make_config())
    catalog = write_json(tmp_path / "catalog.json", catalog_dict(["allTime", "daily"]))
    _, _, out, err = cli(["read", "--config", config, "--catalog", catalog, "--debug"], capsys)
    assert API_KEY not in out and API_KEY not in err
    _, _, out, err = cli(["check", "--config", config], capsys)
    assert API_KEY not in out and API_KEY not in err
    output = run_check(make_config(), tmp_path)
    assert API_KEY not in all_text(output)


def test_key_absent_from_urls(api):
    api.register(json=usage_body())
    output = run_read(make_config(), streams=["allTime", "daily", "hourly"])
    assert errors(output) == []
    assert all(API_KEY not in request.url for request in api.requests)
    assert all(request.headers["X-API-Key"] == API_KEY for request in api.requests)
