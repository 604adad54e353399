"""The CDK's standard connector tests, in-process, against the local Ultravox sandbox.

`TestStandardSuite` is `airbyte_cdk.test.standard_tests.SourceTestSuiteBase` (not the
`DeclarativeSourceTestSuite` variant: that one builds a bare `ConcurrentDeclarativeSource` from a
`manifest.yaml` and `components.py` at the connector root, and this package keeps both in
`source_ultravox_usage/`; test_manifest_only.py runs them as a manifest-only connector). It runs
`SourceUltravoxUsage`, as the console script builds it. Its tests run for the configs of
`acceptance-test-config.yml`, each only for the sections that list it:

- spec lint of the SPEC message (`test_spec`), the config against the spec
  (`test_config_matches_spec`);
- `check` that succeeds (sample_config) and fails cleanly (invalid_config), with no secret in
  its output (`test_check`);
- `discover` and the catalog checks (`test_discover`);
- a full-refresh read of the configured catalog's streams, every stream returning records that
  match its schema (`test_basic_read`), and a read with a bad catalog (`test_fail_read_with_bad_catalog`).

The configs cannot know the sandbox's port: `pytest_generate_tests` below parametrizes
`scenario` indirectly, and the `scenario` fixture points each config's `api_url` at a sandbox
started for this module (and its `api_key` at the sandbox's key, unless the config is expected to
fail: invalid_config's wrong key is what it tests). `create_connector` builds
`SourceUltravoxUsage` with that config and refuses any config that would reach a real host.

The tests after the suite cover what it does not: no secret in the output of every command (the
suite checks `check` only), expected_records.jsonl, the future state of abnormal_state.json and
the config files as shipped. Regenerate expected_records.jsonl with
`UPDATE_EXPECTED_RECORDS=1 .venv/bin/python -m pytest integration_tests/test_standard_suite.py`.

The suite's Docker image tests (marked `image_tests`) run `spec`, `check`, `discover` and `read` in
the image: scripts/test deselects them, scripts/test-image runs them against the image it builds,
named by the fixtures below (`connector_image_override` fails without CONNECTOR_IMAGE and
DOCKER_HOST). `test_docker_image_spec_backward_compatibility` is deselected there too: it fetches the
published spec from Airbyte's registry, which CI cannot reach.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from airbyte_cdk.models import (
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalogSerializer,
)
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.entrypoint_wrapper import read as read_in_process
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests._job_runner import run_test_job
from airbyte_cdk.test.standard_tests._spec_lint import (
    find_config_secrets,
    find_leaked_secrets,
    get_single_spec,
)

from integration_tests.cli import STREAMS, clock_module
from integration_tests.docker_image import image_under_test
from source_ultravox_usage import SourceUltravoxUsage
from ultravox_sandbox import ACCOUNT_PATH, INVOICES_PATH, USAGE_PATH, Sandbox
from ultravox_sandbox.pytest_plugin import SANDBOX_HISTORY_START, SANDBOX_NOW, SANDBOX_SEED

CONNECTOR_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = CONNECTOR_ROOT / "integration_tests"
SAMPLE_CONFIG = TESTS_DIR / "sample_config.json"
INVALID_CONFIG = TESTS_DIR / "invalid_config.json"
CONFIGURED_CATALOG = TESTS_DIR / "configured_catalog.json"
ABNORMAL_STATE = TESTS_DIR / "abnormal_state.json"
EXPECTED_RECORDS = TESTS_DIR / "expected_records.jsonl"

# Not shaped like a real key (8 alphanumerics, a dot, 32 alphanumerics), but long and with digits,
# so the CDK's leak check searches the output for it.
SUITE_API_KEY = "standard-suite-sandbox-key-0001"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
REAL_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}")
# expected_records.jsonl keeps CAT's line format; emitted_at is not compared.
EMITTED_AT = 0


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def suite_sandbox() -> Iterator[Sandbox]:
    """One sandbox for this module, with the fixed clock, history and seed of the `sandbox` fixture."""
    with Sandbox(
        api_key=SUITE_API_KEY, seed=SANDBOX_SEED, history_start=SANDBOX_HISTORY_START, now=SANDBOX_NOW
    ) as box:
        yield box


def against_sandbox(scenario: ConnectorTestScenario, box: Sandbox) -> ConnectorTestScenario:
    """The scenario with its config (read from its file) pointed at `box`.

    A config declared `status: failed` or `exception` keeps its own api_key: invalid_config's
    wrong key is what makes `check` fail. Every other config gets the sandbox's key.
    """
    config = dict(scenario.get_config_dict(connector_root=CONNECTOR_ROOT, empty_if_missing=False))
    config["api_url"] = box.url
    if scenario.status not in ("failed", "exception"):
        config["api_key"] = box.api_key
    return scenario.model_copy(update={"config_dict": config})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `scenario` with the configs of acceptance-test-config.yml, through the fixture.

    This replaces `airbyte_cdk.test.standard_tests.pytest_hooks` (not loaded here), which passes
    the scenarios straight to the tests, before any sandbox is running.
    """
    if "scenario" not in metafunc.fixturenames or metafunc.cls is None:
        return
    scenarios = metafunc.cls.get_scenarios()
    metafunc.parametrize("scenario", scenarios, ids=[s.id for s in scenarios], indirect=True)


@pytest.fixture
def scenario(request: pytest.FixtureRequest, suite_sandbox: Sandbox) -> ConnectorTestScenario:
    return against_sandbox(request.param, suite_sandbox)


# The fixtures of the suite's image tests. The CDK offers them as command-line options in
# `airbyte_cdk.test.standard_tests.pytest_hooks`, which is not loaded here (see pytest_generate_tests).


@pytest.fixture
def connector_image_override() -> str:
    """The image scripts/test-image built. Without one, the suite would build its own FROM
    metadata.yaml's base image, which CI cannot pull."""
    return image_under_test()


@pytest.fixture
def connector_base_image_override() -> None:
    """Only used to build an image, and the image is given."""
    return None


@pytest.fixture
def read_from_streams() -> str:
    """Every stream the config's read covers (metadata.yaml suggests none)."""
    return "all"


@pytest.fixture
def read_scenarios() -> str:
    """Every config listed under `basic_read`: the default reads only configs named `config`,
    `valid_config` or `default`, and would skip sample_config."""
    return "all"


def _require_sandbox(config: dict[str, Any]) -> None:
    host = urlsplit(str(config.get("api_url", ""))).hostname
    if host not in LOOPBACK_HOSTS:
        raise RuntimeError(
            "A standard-suite scenario reached create_connector without the sandbox's api_url "
            "(was it parametrized by another pytest_generate_tests, such as the CDK's "
            "pytest_hooks?). Refusing to build a connector that would call a real API."
        )


class TestStandardSuite(SourceTestSuiteBase):
    """The CDK's standard source tests for source-ultravox-usage; see the module docstring."""

    # The default is the name of the connector root directory, which is a clone's name.
    connector_name = "source-ultravox-usage"

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourceUltravoxUsage:
        """The source as the console script builds it, with the scenario's (sandbox) config.

        The suite hands a read's catalog to the `read` command only, so the source is built without
        one, as the console script builds it for `check` and `discover`.
        """
        if scenario is None:  # spec
            return SourceUltravoxUsage()
        config = scenario.get_config_dict(connector_root=cls.get_connector_root_dir(), empty_if_missing=True)
        _require_sandbox(config)
        return SourceUltravoxUsage(catalog=None, config=config, state=None)

    # -- beyond the suite ---------------------------------------------------------------------

    def test_leak_check_is_armed(self, scenario: ConnectorTestScenario) -> None:
        """The leak check searches for this config's api_key: it is long enough and has digits.

        The CDK skips short or digit-free values (such as `<your-ultravox-api-key>`); a key it
        skips would make every no-secret test pass vacuously.
        """
        spec = get_single_spec(
            run_test_job(self.create_connector(None), "spec", connector_root=self.get_connector_root_dir()),
            connector_name=self.connector_name,
        )
        config = scenario.get_config_dict(
            connector_root=self.get_connector_root_dir(), empty_if_missing=False
        )
        secrets = find_config_secrets(spec.connectionSpecification, config)
        assert [pointer for pointer, _ in secrets] == ["/api_key"]
        leaked = EntrypointOutput(
            messages=[
                json.dumps({"type": "LOG", "log": {"level": "INFO", "message": f"key={config['api_key']}"}})
            ]
        )
        assert find_leaked_secrets(leaked, secrets), "the leak check would not notice this key"

    @pytest.mark.parametrize("verb", ["spec", "check", "discover", "read"])
    def test_no_secret_in_any_output(self, scenario: ConnectorTestScenario, verb: str) -> None:
        """The suite searches `check` output for secrets; this searches every command's output.

        Every command runs for every config here. With a wrong key (a config declared
        `status: failed`), `check` reports FAILED and `read` fails, and neither may print the
        key; `spec` and `discover` send no request, so they succeed.
        """
        failing = scenario.status == "failed" and verb in ("check", "read")
        expected = scenario.with_expecting_failure() if failing else scenario.with_expecting_success()
        output = run_test_job(
            self.create_connector(scenario),
            verb,
            connector_root=self.get_connector_root_dir(),
            test_scenario=None if verb == "spec" else expected,
            catalog=_load_json(CONFIGURED_CATALOG) if verb == "read" else None,
            inspect_output=lambda output: self._assert_no_secrets_in_output(scenario, output, verb=verb),
        )
        if failing and verb == "read":
            assert output.trace_messages, "a failed read must say why in a TRACE message"


def _sandbox_config(box: Sandbox) -> dict[str, Any]:
    return {**_load_json(SAMPLE_CONFIG), "api_url": box.url, "api_key": box.api_key}


@pytest.fixture
def sandbox_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's now_utc() and today_utc() read the suite sandbox's clock (cli.follow_clock,
    undone after the test): account's readAt is then SANDBOX_NOW to the second, the same at every
    run, and the snapshot of expected_records.jsonl can hold it as it is."""
    from airbyte_cdk.sources.declarative.interpolation import macros

    monkeypatch.setattr(macros, "datetime", clock_module(SANDBOX_NOW))


def _read(box: Sandbox, state: list[dict[str, Any]] | None = None) -> EntrypointOutput:
    """A read of configured_catalog.json, with the source built like the console script builds it."""
    config = _sandbox_config(box)
    catalog = ConfiguredAirbyteCatalogSerializer.load(_load_json(CONFIGURED_CATALOG))
    state_messages = [AirbyteStateMessageSerializer.load(s) for s in state] if state is not None else None
    source = SourceUltravoxUsage(catalog=catalog, config=config, state=state_messages)
    output = read_in_process(source, config, catalog, state_messages)
    assert not output.errors, output.get_formatted_error_message()
    return output


def _record_lines(output: EntrypointOutput) -> list[dict[str, Any]]:
    return [
        {"stream": m.record.stream, "data": m.record.data, "emitted_at": EMITTED_AT}
        for m in output.records
        if m.record is not None
    ]


STREAM_ORDER = {
    "allTime": 0,
    "daily": 1,
    "hourly": 2,
    "agentDaily": 3,
    "concurrency": 4,
    "billingDaily": 5,
    "calls": 6,
    "invoices": 7,
    "account": 8,
}
# Each stream's time field: the sort's second key.
MOMENTS = ("date", "bucketStart", "created", "invoiceDate", "readAt")


def _sort_key(line: dict[str, Any]) -> tuple[int, str, int, str, str]:
    data = line["data"]
    moment = next((data[f] for f in MOMENTS if f in data), "")
    return (
        STREAM_ORDER[line["stream"]],
        moment,
        data.get("hour", -1),
        data.get("agentId") or "",
        data.get("callId", ""),
    )


def test_expected_records(suite_sandbox: Sandbox, sandbox_clock: None) -> None:
    """A first sync of sample_config's fixed range returns exactly expected_records.jsonl."""
    lines = sorted(_record_lines(_read(suite_sandbox)), key=_sort_key)
    if os.environ.get("UPDATE_EXPECTED_RECORDS") == "1":
        EXPECTED_RECORDS.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    expected = [json.loads(line) for line in EXPECTED_RECORDS.read_text().splitlines() if line.strip()]
    # The snapshot is consistent in itself: hours add up to days, days to the range's allTime.
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for line in expected:
        by_stream.setdefault(line["stream"], []).append(line["data"])
    assert sorted(by_stream) == sorted(STREAM_ORDER)
    days = {d["date"]: d["totalCount"] for d in by_stream["daily"]}
    assert sorted(days) == [f"2025-02-{n}" for n in range(24, 29)] + ["2025-03-01", "2025-03-02"]
    for day, total in days.items():
        assert sum(h["totalCount"] for h in by_stream["hourly"] if h["date"] == day) == total, day
        # Calls created without an agent are in no agent's rows.
        assert sum(a["calls"] for a in by_stream["agentDaily"] if a["date"] == day) <= total, day
    assert sorted(b["date"] for b in by_stream["billingDaily"]) == sorted(days)
    hours = sorted(c["bucketStart"] for c in by_stream["concurrency"])
    assert hours[0] == "2025-02-24T00:00:00Z" and hours[-1] == "2025-03-02T23:00:00Z" and len(hours) == 7 * 24
    assert by_stream["allTime"] == [
        {
            **by_stream["allTime"][0],
            "totalCount": sum(days.values()),
            "fromDate": "2025-02-24",
            "toDate": "2025-03-02",
        }
    ]
    # The ledger: every call of the range once, each day's calls adding up to the day's row.
    calls = by_stream["calls"]
    assert len({c["callId"] for c in calls}) == len(calls)
    daily = {d["date"]: d for d in by_stream["daily"]}
    assert sorted({c["created"][:10] for c in calls}) == sorted(days)
    for day, row in daily.items():
        of_day = [c for c in calls if c["created"][:10] == day]
        assert len(of_day) == row["totalCount"], day
        assert sum(1 for c in of_day if c.get("joined")) == row["joinedCount"], day
        billed = sum(c["billedDurationSeconds"] for c in of_day) / 60
        assert billed == pytest.approx(row["billedMinutes"], abs=1e-6), day
        billing = next(b for b in by_stream["billingDaily"] if b["date"] == day)
        assert billed == pytest.approx(billing["minutes"], abs=1e-6), day
    # The bill: one invoice a month from the history's start to the clock's month, the last unpaid.
    invoices = sorted(by_stream["invoices"], key=lambda i: i["invoiceDate"])
    assert [i["invoiceDate"][:7] for i in invoices] == ["2024-11", "2024-12", "2025-01", "2025-02", "2025-03"]
    assert [i["invoiceStatus"] for i in invoices] == ["paid"] * 4 + ["unpaid"]
    assert len({i["invoiceNumber"] for i in invoices}) == len(invoices)
    # The account once, read at the sandbox's clock.
    (account,) = by_stream["account"]
    assert account["readAt"] == SANDBOX_NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert account["freeTimeUsedSeconds"] + account["freeTimeRemainingSeconds"] == 1800
    assert len(lines) == len(expected)
    for got, want in zip(lines, sorted(expected, key=_sort_key), strict=True):
        assert (got["stream"], got["data"]) == (want["stream"], want["data"])


def test_abnormal_state_reads_nothing_and_keeps_it(suite_sandbox: Sandbox) -> None:
    """With cursors far in the future, the incremental streams request and read nothing, and keep their
    state; the full-refresh streams (allTime, invoices, account) read as ever."""
    abnormal = _load_json(ABNORMAL_STATE)
    assert sorted(s["stream"]["stream_descriptor"]["name"] for s in abnormal) == sorted(
        name for name, keys in STREAMS.items() if keys["cursor_field"]
    )
    suite_sandbox.clear_log()
    output = _read(suite_sandbox, state=abnormal)
    streams = {line["stream"] for line in _record_lines(output)}
    assert streams == {"allTime", "invoices", "account"}, streams
    # allTime's one request, for the configured range, the invoices' one page and the account; no
    # window of an incremental stream.
    assert sorted(
        (r.path, r.query.get("fromDate"), r.query.get("toDate")) for r in suite_sandbox.requests
    ) == sorted(
        [
            (USAGE_PATH, ["2025-02-24"], ["2025-03-02"]),
            (INVOICES_PATH, None, None),
            (ACCOUNT_PATH, None, None),
        ]
    )
    final = {}
    for message in output.state_messages:
        dumped = AirbyteStateMessageSerializer.dump(message.state)["stream"]
        final[dumped["stream_descriptor"]["name"]] = dumped["stream_state"]
    for saved in abnormal:
        name = saved["stream"]["stream_descriptor"]["name"]
        assert final.get(name) == saved["stream"]["stream_state"], (name, final.get(name))


def test_configured_catalog_matches_discover(suite_sandbox: Sandbox) -> None:
    """configured_catalog.json names the discovered streams with their keys, cursors and modes."""
    config = _sandbox_config(suite_sandbox)
    output = run_test_job(
        SourceUltravoxUsage(config=config),
        "discover",
        connector_root=CONNECTOR_ROOT,
        test_scenario=ConnectorTestScenario(config_dict=config, status="succeed"),
    )
    assert output.catalog.catalog is not None
    discovered = {s.name: s for s in output.catalog.catalog.streams}
    configured = _load_json(CONFIGURED_CATALOG)["streams"]
    assert sorted(c["stream"]["name"] for c in configured) == sorted(discovered)
    for entry in configured:
        stream = discovered[entry["stream"]["name"]]
        modes = [m.value for m in stream.supported_sync_modes]
        assert entry["sync_mode"] in modes
        assert entry["stream"]["supported_sync_modes"] == modes
        assert entry["primary_key"] == (stream.source_defined_primary_key or [])
        assert entry["cursor_field"] == (stream.default_cursor_field or [])


def test_config_files_as_shipped() -> None:
    """The config files, before the sandbox overlay: valid for the spec, fixed dates, fake keys."""
    output = run_test_job(SourceUltravoxUsage(), "spec", connector_root=CONNECTOR_ROOT)
    spec = output.spec_messages[0].spec.connectionSpecification
    for path in (SAMPLE_CONFIG, INVALID_CONFIG):
        config = _load_json(path)
        jsonschema.validate(config, spec)
        assert {"start_date", "end_date"} <= set(config), f"{path.name} needs a fixed date range"
        assert "api_url" not in config, f"{path.name}: api_url is hidden; users leave the default"
        assert not REAL_KEY_SHAPE.search(path.read_text()), f"{path.name} holds a key shaped like a real one"
    assert _load_json(SAMPLE_CONFIG)["api_key"].startswith("<"), "sample_config's key must be a placeholder"
