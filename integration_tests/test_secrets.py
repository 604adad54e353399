"""The API key stays secret: it never appears in anything the CLI prints (stdout, stderr, logs,
traces, on success and on every error path), it is never sent to a host other than the API's
(redirects included) nor in a URL, and a plain-http api_url to a non-loopback host is refused."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import pytest
import requests
import requests_mock

from integration_tests.cli import CliResult, configured_catalog, run_cli
from source_ultravox_usage.run import run as cli_run
from ultravox_sandbox import Faults, Sandbox
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW

# Distinctive, and deliberately not shaped like a real key (8 alnum + '.' + 32 alnum).
CANARY = "secret-canary-7f3a9c-not-real"
START, END = "2025-02-20", "2025-03-04"
STREAMS = ("allTime", "daily", "hourly", "calls", "invoices", "account")
CLI_TIMEOUT = 90


def assert_no_canary(result: CliResult) -> None:
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert CANARY not in text, f"the API key leaked on {name}"
        assert CANARY.upper() not in text.upper()
    assert result.of_type("_NOT_JSON") == []


def assert_key_only_in_header(box: Sandbox) -> None:
    for request in box.requests:
        assert CANARY not in request.path
        assert all(CANARY not in v for values in request.query.values() for v in values)
        assert all(CANARY not in v for k, v in request.headers.items() if k != "x-api-key")


def make_box(**kwargs: Any) -> Sandbox:
    return Sandbox(seed=7, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW, **kwargs)


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with make_box(api_key=CANARY) as sandbox:
        yield sandbox


def config_for(box: Sandbox, **overrides: Any) -> dict[str, Any]:
    return {
        "api_key": CANARY,
        "api_url": box.url,
        "start_date": START,
        "end_date": END,
        "window_days": 7,
        "num_workers": 2,
        **overrides,
    }


def run_all(
    box: Sandbox, config: dict[str, Any], state: list[dict[str, Any]] | None = None
) -> list[CliResult]:
    """check, discover and read with one config, side by side (each is its own process)."""
    catalog = configured_catalog(STREAMS)
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = [
            pool.submit(run_cli, "check", config, timeout=CLI_TIMEOUT),
            pool.submit(run_cli, "discover", config, timeout=CLI_TIMEOUT),
            pool.submit(run_cli, "read", config, catalog, state, timeout=CLI_TIMEOUT),
        ]
        return [run.result() for run in runs]


def check_and_read(box: Sandbox, config: dict[str, Any]) -> list[CliResult]:
    """The commands that talk to the API (discover never does)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        check = pool.submit(run_cli, "check", config, timeout=CLI_TIMEOUT)
        read = pool.submit(run_cli, "read", config, configured_catalog(STREAMS), timeout=CLI_TIMEOUT)
        return [check.result(), read.result()]


def test_the_key_is_sent_and_never_printed_on_a_successful_sync(box: Sandbox) -> None:
    results = [*run_all(box, config_for(box)), run_cli("spec")]
    for result in results:
        assert_no_canary(result)
    check, discover, read = results[:3]
    assert check.connection_status["status"] == "SUCCEEDED"
    assert discover.returncode == 0 and read.returncode == 0
    assert all(read.records(stream) for stream in STREAMS)
    assert {r.headers.get("x-api-key") for r in box.requests} == {CANARY}
    assert_key_only_in_header(box)


FAULTS = {
    "429-over-the-cap": Faults(rate_limit_first=100, retry_after="3600"),
    "truncated-json": Faults(malformed_json=True),
    "wrong-shape": Faults(wrong_shape=True),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_the_key_is_never_printed_on_api_fault_paths(box: Sandbox, fault: Faults) -> None:
    box.faults = fault
    for result in check_and_read(box, config_for(box)):
        assert_no_canary(result)
    assert_key_only_in_header(box)


CONFIG_ERRORS = {
    "404-api-url": None,  # filled in with the sandbox's URL plus a wrong path
    "http-non-loopback": {"api_url": "http://api.ultravox.ai/api"},
}


@pytest.mark.parametrize("overrides", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_the_key_is_never_printed_on_config_error_paths(
    box: Sandbox, overrides: dict[str, Any] | None
) -> None:
    overrides = overrides if overrides is not None else {"api_url": box.url + "/v9"}
    results = run_all(box, config_for(box, **overrides))
    for result in results:
        assert_no_canary(result)
    check, _, read = results
    assert check.connection_status["status"] == "FAILED"
    assert read.returncode != 0
    assert any(e["failure_type"] == "config_error" for e in read.errors)


def test_the_key_is_never_printed_when_the_api_rejects_it(box: Sandbox) -> None:
    box.api_key = "sandbox-expects-another-key"
    results = check_and_read(box, config_for(box))
    for result in results:
        assert_no_canary(result)
    assert results[0].connection_status["status"] == "FAILED"
    assert "rejected the API key" in results[0].connection_status["message"]


def test_the_key_is_never_printed_for_a_malformed_state_or_a_key_of_the_wrong_type(box: Sandbox) -> None:
    bad_state = [
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "daily"}, "stream_state": {"date": 7}}}
    ]
    results = [run_cli("read", config_for(box), configured_catalog(STREAMS), bad_state)]
    for wrong in ([CANARY], {"value": CANARY}):
        results += check_and_read(box, config_for(box, api_key=wrong))
    for result in results:
        assert_no_canary(result)
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("key", [CANARY + "\n", "\t" + CANARY], ids=["newline", "tab"])
def test_a_key_with_stray_whitespace_is_a_config_error_that_does_not_print_it(box: Sandbox, key: str) -> None:
    check, read = check_and_read(box, config_for(box, api_key=key))
    for result in (check, read):
        assert_no_canary(result)
    assert check.connection_status["status"] == "FAILED"
    assert "api_key" in check.connection_status["message"]
    assert [e["failure_type"] for e in read.errors] == ["config_error"]
    assert box.requests == []


class EchoingSandbox(Sandbox):
    """A hostile or buggy server that quotes the key it received in every answer."""

    status = 401

    def _answer(self, method, path, query, key, raw_path):  # type: ignore[no-untyped-def]
        body = {"detail": f"Key {key} is not valid here.", "key": key}
        if self.status == 200:
            body = {"results": [key], "detail": key}
        return self.status, {"X-Echo": str(key)}, "application/json", json.dumps(body).encode()


@pytest.mark.parametrize("status", [400, 401, 200])
def test_a_server_quoting_the_key_back_does_not_make_the_connector_print_it(status: int) -> None:
    with EchoingSandbox(seed=7, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW) as box:
        box.status = status
        for result in check_and_read(box, config_for(box)):
            assert_no_canary(result)
            assert result.returncode == 0 or result.errors


def test_a_redirect_to_another_host_never_carries_the_key(box: Sandbox) -> None:
    with make_box(api_key=CANARY) as other:
        box.faults = Faults(redirect_to=other.origin)
        results = check_and_read(box, config_for(box))
        for result in results:
            assert_no_canary(result)
        assert box.requests and all(r.status == 302 for r in box.requests)
        assert {r.headers.get("x-api-key") for r in box.requests} == {CANARY}
        assert other.requests, "the redirect was not followed; the test proves nothing"
        assert [r for r in other.requests if "x-api-key" in r.headers] == []
        assert_key_only_in_header(other)
        # Without the key the other host refuses: the user sees a config error, not a crash.
        check, read = results
        assert check.connection_status["status"] == "FAILED"
        assert any(e["failure_type"] == "config_error" for e in read.errors)


def test_a_next_page_on_another_host_is_never_requested(box: Sandbox) -> None:
    """The calls list's `next` names another server (a compromised or misconfigured API, a
    proxy's rewrite): the connector stops with an error naming both origins before it sends a
    request there, so the key never reaches that server. (invoices follows `next` by the same
    strategy; the sandbox's few invoices fit one page of the 100 it asks for.)"""
    with make_box(api_key=CANARY) as other:
        box.faults = Faults(next_origin=other.origin)
        config = config_for(box, calls_window_days=3, calls_page_size=5)
        read = run_cli("read", config, configured_catalog(["calls"]), timeout=CLI_TIMEOUT)
        assert_no_canary(read)
        assert read.returncode == 1
        # Each window's error (the stream's), then the CDK's summary of the failed streams.
        of_calls = [e for e in read.errors if e.get("stream_descriptor") == {"name": "calls"}]
        assert of_calls and {e["failure_type"] for e in of_calls} == {"system_error"}, read.errors
        assert all(other.origin in e["message"] and box.origin in e["message"] for e in of_calls)
        assert box.requests and all(r.path == "/api/calls" for r in box.requests)
        assert other.requests == [], "a request went to the other host"
        assert_key_only_in_header(box)


def _non_loopback_address() -> str | None:
    for probe in ("10.255.255.255", "192.0.2.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 1))
                address = sock.getsockname()[0]
            except OSError:
                continue
        if not address.startswith("127.") and address != "0.0.0.0":  # noqa: S104
            return address
    return None


def test_plain_http_to_a_non_loopback_host_is_refused_before_any_request() -> None:
    """A sandbox on this machine's own network address over plain http: reachable, not loopback.
    check and read refuse the URL and the sandbox sees no request at all."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with make_box(api_key=CANARY, host="0.0.0.0") as box:  # noqa: S104
        port = box.origin.rsplit(":", 1)[1]
        config = config_for(box, api_url=f"http://{address}:{port}/api")
        check, discover, read = run_all(box, config)
        for result in (check, discover, read):
            assert_no_canary(result)
        assert check.connection_status["status"] == "FAILED"
        assert "api_url" in check.connection_status["message"]
        assert "https" in check.connection_status["message"]
        assert read.returncode != 0
        assert [e["failure_type"] for e in read.errors] == ["config_error"]
        assert "api_url" in read.errors[0]["message"]
        assert box.requests == []
        # The same sandbox over loopback is accepted.
        loopback = run_cli("check", config_for(box, api_url=f"http://127.0.0.1:{port}/api"))
        assert loopback.connection_status["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    "api_url",
    [
        "http://api.ultravox.ai/api",
        "http://10.0.0.7/api",
        "http://192.168.1.20:8080/api",
        "http://[2001:db8::1]/api",
        "http://127.0.0.1.nip.io/api",
        "http://localhost.example.com/api",
        "HTTP://api.ultravox.ai/api",
    ],
)
@pytest.mark.parametrize("command", ["check", "read"])
def test_plain_http_api_urls_are_refused_with_no_request_sent(
    api_url: str, command: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = requests_mock.Adapter()
    adapter.register_uri(requests_mock.ANY, requests_mock.ANY, status_code=500)

    def send(self, request, **kwargs):  # noqa: ANN001
        return adapter.send(request, **kwargs)

    config_path = tmp_path / "config.json"
    config_path.write_text(
        json.dumps({"api_key": CANARY, "api_url": api_url, "start_date": START, "end_date": END})
    )
    catalog_path = tmp_path / "catalog.json"
    catalog_path.write_text(json.dumps(configured_catalog(STREAMS)))
    args = [command, "--config", str(config_path)]
    if command == "read":
        args += ["--catalog", str(catalog_path)]
    code, out, err = run_in_process(args, send, capsys)
    assert CANARY not in out + err
    assert err == ""
    assert adapter.request_history == []
    messages = [json.loads(line) for line in out.splitlines()]
    refused = (
        f"api_url {api_url!r} uses plain http; https is required except for loopback hosts "
        "(localhost, 127.0.0.1, ::1), so the API key never crosses a network unencrypted."
    )
    if command == "check":
        assert code == 0
        (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
        assert status["status"] == "FAILED"
        # The CDK wraps the error of building the streams, and may quote it.
        wrapped = f"Encountered an error while discovering streams. Error: {refused}"
        assert status["message"] in (wrapped, f'"{wrapped}"'), status["message"]
    else:
        assert code == 1
        (error,) = [m["trace"]["error"] for m in messages if m["type"] == "TRACE"]
        assert error["failure_type"] == "config_error" and error["message"] == refused


def run_in_process(args: list[str], send: Any, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The console script's function with `send` in place of the network: exit code, stdout, stderr.

    Like the CDK's launch(), run() lets an uncaught exception (a config error in read) propagate;
    in a process the excepthook that launch() installs turns it into a TRACE message and exit code
    1, so it is handed to that hook here too."""
    code = 0
    hook = sys.excepthook
    try:
        with mock.patch.object(requests.adapters.HTTPAdapter, "send", send):
            cli_run(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as error:  # noqa: BLE001 (a process would hand it to the excepthook launch() set)
        code = 1
        sys.excepthook(type(error), error, error.__traceback__)
    finally:
        sys.excepthook = hook
    captured = capsys.readouterr()
    return code, captured.out, captured.err
