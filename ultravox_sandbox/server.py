"""A local HTTP stand-in for Ultravox's usage endpoints, with a movable clock and faults.

Served from one call log: the aggregates `GET /api/accounts/me/usage/calls`, `/api/agents/usage`,
`/api/accounts/me/usage/concurrency` and `/api/accounts/me/billing/usage`; the ledger `GET
/api/calls` (every call, paginated: ledger.py), `/api/accounts/me/billing/invoices` (invoices.py)
and `/api/accounts/me` (account.py); and `DELETE /api/calls/{callId}`, after which the call is in
no figure and no list. Every path shares the key check, the fault switches and the request log.
Each answer's Date header is the sandbox's clock, as a server's is its own.
"""

from __future__ import annotations

import contextlib
import email.utils
import hmac
import json
import random
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .account import DEFAULT_ALLOWED_CONCURRENT_CALLS, account
from .agent_usage import AGENT_EMPTY_DAY_MODES, AGENTS_WITHOUT_CALLS_MODES, agent_usage
from .billing import BILLING_EMPTY_DAY_MODES, billing_usage
from .calls import AGENT_NAMES, UNNAMED_AGENT_ID, Call, generate_calls
from .concurrency import CONCURRENCY_EMPTY_BUCKET_MODES, CONCURRENCY_END_MODES, concurrency
from .invoices import INVOICE_AMOUNT_UNITS, invoices, invoices_page
from .ledger import CALL_SORTS, CALLS_PAGE_SIZE_MAX, RUNNING_CALLS_MODES, calls_page, list_calls
from .usage import (
    ALL_TIME_SCOPES,
    EMPTY_BUCKET_MODES,
    FUTURE_BUCKET_MODES,
    SandboxBadRequest,
    aggregate,
    parse_filters,
)

SANDBOX_API_KEY = "sandbox-not-a-secret-0000"
USAGE_PATH = "/api/accounts/me/usage/calls"
AGENT_USAGE_PATH = "/api/agents/usage"
CONCURRENCY_PATH = "/api/accounts/me/usage/concurrency"
BILLING_USAGE_PATH = "/api/accounts/me/billing/usage"
# DELETE CALL_PATH + "<callId>"
CALL_PATH = "/api/calls/"
CALLS_PATH = "/api/calls"
INVOICES_PATH = "/api/accounts/me/billing/invoices"
ACCOUNT_PATH = "/api/accounts/me"
# The `wrong_shape` body: {"results": []} lacks every key of the aggregates, but is a valid empty
# page of the two lists, so those get a body without `results`.
_WRONG_SHAPES: dict[str, Any] = {CALLS_PATH: {"data": []}, INVOICES_PATH: {"data": []}}
# The log reaches this far past `now`, so advancing the clock makes calls arrive.
LOOKAHEAD = timedelta(days=30)
# How Django REST Framework may render an error: {"detail": "..."} (an APIException), a list
# (`raise ValidationError("...")`) or field errors ({"fromDate": ["..."]}, non_field_errors).
ERROR_BODY_SHAPES = ("detail", "list", "fields")
# A detail starting "fromDate: ", "metadata.tier: " names the parameter it is about.
_FIELD_RE = re.compile(r"([A-Za-z_][\w.]*): (.+)", re.DOTALL)


@dataclass
class Faults:
    """Misbehaviour switches; all off by default. Count-based ones count down across requests."""

    latency_s: float = 0.0
    rate_limit_first: int = 0
    retry_after: str = "1"
    server_errors_first: int = 0
    server_error_status: int = 503
    error_rate: float = 0.0
    hang_s: float = 0.0
    drop_connection_first: int = 0
    malformed_json: bool = False
    # The next n 200 answers are cut in half like malformed_json; later ones are whole again.
    malformed_json_first: int = 0
    wrong_shape: bool = False
    non_json: bool = False
    redirect_to: str | None = None
    # fromDate..toDate longer than this many days: 400, on /usage/calls, /agents/usage and
    # /api/calls, the paths that take those filters (the other two have their own range rules: see
    # the Sandbox switches).
    reject_window_days_over: int | None = None
    # The list endpoints' next/previous links on this origin (`http://host:port`) instead of the
    # request's: an answer that sends the client to another server.
    next_origin: str | None = None
    # A dict body gets a "_pad" key of this many "x"; a list body (/agents/usage) as many
    # trailing spaces, so it stays the same JSON value.
    large_response_pad: int = 0


class _Headers(dict[str, str]):
    """Header names stored lower-cased; lookups ignore case like HTTP does."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(repr=False)
    status: int  # 0 when the connection was dropped without an answer
    started: float  # time.monotonic() when the request was read
    ended: float  # when the answer was ready to send, after any latency or hang

    def __repr__(self) -> str:
        # The key value stays out of test failure output.
        shown = {k: ("***" if k == "x-api-key" else v) for k, v in self.headers.items()}
        return (
            f"LoggedRequest({self.method} {self.path} query={self.query} headers={shown} "
            f"status={self.status} took={self.ended - self.started:.3f}s)"
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of parallel clients must not wait on SYN retries
    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (a connector killed mid-request) is not the sandbox's error; the
        # default prints a traceback into the output of every test that kills one.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_open_sockets(self) -> None:
        # Keep-alive connections would otherwise keep being served after stop().
        with self.sockets_lock:
            sockets, self.open_sockets = list(self.open_sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.sandbox.access_log:
            super().log_message(format, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header: the sandbox's clock, not the machine's.
        return email.utils.format_datetime(self.server.sandbox.now, usegmt=True)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        started = time.monotonic()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        headers = _Headers((k.lower(), v) for k, v in self.headers.items())
        if self.command != "GET":
            # The body is never read, so the connection cannot be reused safely.
            self.close_connection = True
        # The Host the client asked for, for the absolute next/previous links of the lists (as
        # DRF's build_absolute_uri). Handed over per thread: tests override _answer's signature.
        sandbox._request_host.value = headers.get("host")
        try:
            answer = sandbox._answer(self.command, url.path, query, headers.get("x-api-key"), self.path)
        except Exception:
            # A sandbox bug must not look like a network fault to the client under test.
            traceback.print_exc()
            answer = _json(500, {"detail": "Sandbox internal error (see its stderr)."})
        # Logged before the client can see the answer, so a test may inspect the log right after.
        status = 0 if answer is None else answer[0]
        sandbox._log(LoggedRequest(self.command, url.path, query, headers, status, started, time.monotonic()))
        if answer is None:
            self.close_connection = True
        else:
            self._send(*answer)

    def _send(self, status: int, extra_headers: dict[str, str], content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            if status != 204:  # No Content has neither (RFC 9110)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            for name, value in extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (e.g. timed out on a hang); nothing left to do.
            self.close_connection = True


_Answer = tuple[int, dict[str, str], str, bytes]  # status, extra headers, content type, body


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> _Answer:
    return status, headers or {}, "application/json", json.dumps(body).encode()


def error_body(detail: str, shape: str = "detail") -> Any:
    """The body of a 4xx saying `detail`, in one of ERROR_BODY_SHAPES; as field errors, a detail
    that names its parameter first ("fromDate: ...") is that field's, any other non_field_errors."""
    if shape == "list":
        return [detail]
    if shape == "fields":
        named = _FIELD_RE.fullmatch(detail)
        return {named[1]: [named[2]]} if named else {"non_field_errors": [detail]}
    return {"detail": detail}


_HTML = b"<!doctype html><html><head><title>Maintenance</title></head><body><h1>Back soon</h1></body></html>"


class Sandbox:
    """The usage endpoints over a synthetic call log; see the package docstring for an example.

    Switches for what nobody has seen the real API do (each a `python -m ultravox_sandbox` flag):
    - `empty_buckets` ("zero" | "omit"): /usage/calls days and hours without calls.
    - `all_time_scope` ("range" | "lifetime"): /usage/calls `allTime` over the range or ever.
    - `agents_without_calls` ("omit" | "list"): /agents/usage agents with no call in the range.
    - `agent_empty_days` ("omit" | "zero"): /agents/usage days without calls.
    - `concurrency_empty_buckets` ("zero" | "omit"): /usage/concurrency buckets without calls.
    - `concurrency_end` ("exclusive" | "inclusive"): is a bucket starting exactly at `end` listed.
    - `concurrency_max_days` (None | days): longer start..end ranges are a 400.
    - `concurrency_history_days` (None | days): buckets starting before now - this are left out.
    - `billing_empty_days` ("zero" | "omit"): /billing/usage days without billed minutes.
    - `odd_values` (False | True): values the published schema allows that the default log never
      shows: an agent named "" and, every Sunday, a credit that makes the day's billed minutes
      negative on /usage/calls, /agents/usage and /billing/usage alike (calls.py). Set when built.
    - `error_bodies` ("detail" | "list" | "fields"): the shape of every 4xx body (error_body).
    - `future_buckets` ("omit" | "zero"): /usage/calls days and hours, and /billing/usage days,
      after now that the request asks for.
    - `calls_page_size_max` (1000): /api/calls cuts a larger pageSize to this, silently, as DRF's
      CursorPagination does (the default page is 100; invoices: 10, at most 100).
    - `next_keeps_filters` (True | False): /api/calls and /billing/invoices `next`/`previous` are
      the request URL with the cursor replaced (DRF), or carry only pageSize and cursor.
    - `running_calls` ("listed" | "omitted"): does /api/calls list calls still running.
    - `calls_default_sort` ("created" | "-created"): /api/calls order without a valid `sort`.
    - `invoice_amount_unit` ("cents" | "dollars"): what an invoice's integer `amount` counts.
    - `allowed_concurrent_calls` (5 | None): /accounts/me's allowedConcurrentCalls (never enforced).

    `DELETE /api/calls/{callId}` (or `delete_calls`) deletes a call: it is in no figure after.
    The ledger's truths: `calls_truth`, `invoices_truth`, `account_truth`.
    """

    def __init__(
        self,
        api_key: str = SANDBOX_API_KEY,
        seed: int = 7,
        history_start: date = date(2023, 1, 1),
        now: datetime | None = None,
        calls_per_day: float = 20,
        empty_buckets: str = "zero",
        all_time_scope: str = "range",
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
        agents_without_calls: str = "omit",
        agent_empty_days: str = "omit",
        concurrency_empty_buckets: str = "zero",
        concurrency_end: str = "exclusive",
        concurrency_max_days: float | None = None,
        concurrency_history_days: float | None = None,
        billing_empty_days: str = "zero",
        odd_values: bool = False,
        error_bodies: str = "detail",
        future_buckets: str = "omit",
        calls_page_size_max: int = CALLS_PAGE_SIZE_MAX,
        next_keeps_filters: bool = True,
        running_calls: str = "listed",
        calls_default_sort: str = "created",
        invoice_amount_unit: str = "cents",
        allowed_concurrent_calls: int | None = DEFAULT_ALLOWED_CONCURRENT_CALLS,
    ) -> None:
        for name, value, allowed in (
            ("empty_buckets", empty_buckets, EMPTY_BUCKET_MODES),
            ("all_time_scope", all_time_scope, ALL_TIME_SCOPES),
            ("agents_without_calls", agents_without_calls, AGENTS_WITHOUT_CALLS_MODES),
            ("agent_empty_days", agent_empty_days, AGENT_EMPTY_DAY_MODES),
            ("concurrency_empty_buckets", concurrency_empty_buckets, CONCURRENCY_EMPTY_BUCKET_MODES),
            ("concurrency_end", concurrency_end, CONCURRENCY_END_MODES),
            ("billing_empty_days", billing_empty_days, BILLING_EMPTY_DAY_MODES),
            ("error_bodies", error_bodies, ERROR_BODY_SHAPES),
            ("future_buckets", future_buckets, FUTURE_BUCKET_MODES),
            ("running_calls", running_calls, RUNNING_CALLS_MODES),
            ("calls_default_sort", calls_default_sort, CALL_SORTS),
            ("invoice_amount_unit", invoice_amount_unit, INVOICE_AMOUNT_UNITS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}")
        for name, days in (
            ("concurrency_max_days", concurrency_max_days),
            ("concurrency_history_days", concurrency_history_days),
        ):
            if days is not None and not days > 0:
                raise ValueError(f"{name} must be None or a positive number of days")
        if not (isinstance(calls_page_size_max, int) and calls_page_size_max > 0):
            raise ValueError("calls_page_size_max must be a positive integer")
        if allowed_concurrent_calls is not None and not (
            isinstance(allowed_concurrent_calls, int) and allowed_concurrent_calls > 0
        ):
            raise ValueError("allowed_concurrent_calls must be None or a positive integer")
        if now is not None and now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.api_key = api_key
        self.seed = seed
        self.history_start = history_start
        self.calls_per_day = calls_per_day
        self.empty_buckets = empty_buckets
        self.all_time_scope = all_time_scope
        self.agents_without_calls = agents_without_calls
        self.agent_empty_days = agent_empty_days
        self.concurrency_empty_buckets = concurrency_empty_buckets
        self.concurrency_end = concurrency_end
        self.concurrency_max_days = concurrency_max_days
        self.concurrency_history_days = concurrency_history_days
        self.billing_empty_days = billing_empty_days
        self._odd_values = odd_values
        self.error_bodies = error_bodies
        self.future_buckets = future_buckets
        self.calls_page_size_max = calls_page_size_max
        self.next_keeps_filters = next_keeps_filters
        self.running_calls = running_calls
        self.calls_default_sort = calls_default_sort
        self.invoice_amount_unit = invoice_amount_unit
        self.allowed_concurrent_calls = allowed_concurrent_calls
        self.access_log = access_log
        self._request_host = threading.local()
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._log_entries: list[LoggedRequest] = []
        self._calls: list[Call] = []
        self._calls_end = history_start - timedelta(days=1)
        self._now = (now or datetime.now(UTC)).astimezone(UTC)
        self._extend_log()
        self.faults = faults or Faults()

    # -- clock and data -------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        with self._lock:
            self._now = value.astimezone(UTC)
            self._extend_log()

    @property
    def odd_values(self) -> bool:
        """Read-only: its credits are calls of the log, generated as the clock moves."""
        return self._odd_values

    @property
    def agent_names(self) -> dict[str, str]:
        """Every agent of the account and its name, as /agents/usage lists them."""
        return {**AGENT_NAMES, UNNAMED_AGENT_ID: ""} if self._odd_values else AGENT_NAMES

    def advance(self, delta: timedelta) -> datetime:
        self.now = self._now + delta
        return self._now

    def _extend_log(self) -> None:
        # Each day's calls depend only on (seed, day), so growing the log never rewrites the past.
        wanted_end = (self._now + LOOKAHEAD).date()
        if wanted_end > self._calls_end:
            start = self._calls_end + timedelta(days=1)
            self._calls = self._calls + generate_calls(
                self.seed, start, wanted_end, self.calls_per_day, credits=self._odd_values
            )
            self._calls_end = wanted_end

    @property
    def calls(self) -> list[Call]:
        """The whole synthetic log, including calls created after `now` that do not exist yet,
        less the deleted calls."""
        return self._calls

    def delete_calls(self, call_ids: Iterable[str]) -> None:
        """Deletes these calls, as `DELETE /api/calls/{callId}` does: from now on they are in no
        figure of any endpoint. A KeyError names the ids of no call that exists now (unknown,
        deleted already, or created after now), and then nothing is deleted."""
        with self._lock:
            wanted = set(call_ids)
            existing = {c.call_id for c in self._calls if c.created <= self._now}
            if unknown := wanted - existing:
                raise KeyError(f"no such call: {sorted(unknown)}")
            # A new list: a request answering meanwhile keeps the list it took.
            self._calls = [c for c in self._calls if c.call_id not in wanted]

    def ground_truth(self, params: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """The body of /accounts/me/usage/calls for `params` (as `parse_qs` gives them) now."""
        return aggregate(
            self._calls, params or {}, self._now, self.empty_buckets, self.all_time_scope, self.future_buckets
        )

    def agent_usage_truth(self, params: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """The body of /agents/usage for `params`; raises SandboxBadRequest where it answers 400."""
        return agent_usage(
            self._calls,
            params or {},
            self._now,
            self.agents_without_calls,
            self.agent_empty_days,
            self.agent_names,
        )

    def concurrency_truth(self, params: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """The body of /accounts/me/usage/concurrency for `params`; SandboxBadRequest for a 400."""
        return concurrency(
            self._calls,
            params or {},
            self._now,
            self.concurrency_empty_buckets,
            self.concurrency_end,
            self.concurrency_max_days,
            self.concurrency_history_days,
        )

    def billing_truth(self, params: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """The body of /accounts/me/billing/usage for `params`; SandboxBadRequest for a 400."""
        return billing_usage(
            self._calls, params or {}, self._now, self.billing_empty_days, self.future_buckets
        )

    def calls_truth(self, params: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """Every `Call` GET /api/calls lists for `params` (as `parse_qs` gives them; pageSize and
        cursor are ignored) now, all pages joined, in its order; SandboxBadRequest for a 400."""
        return list_calls(
            self._calls,
            params or {},
            self._now,
            self.agent_names,
            self.running_calls,
            self.calls_default_sort,
        )

    def invoices_truth(self) -> list[dict[str, Any]]:
        """Every invoice /accounts/me/billing/invoices lists now, all pages joined, newest first."""
        every = invoices(self._calls, self.history_start, self._now, self.seed, self.invoice_amount_unit)
        return every[::-1]

    def account_truth(self) -> dict[str, Any]:
        """The body of /accounts/me now."""
        return account(self._calls, self._now, self.seed, self.allowed_concurrent_calls)

    # -- faults and request log -----------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            self._faults = value
            self._remaining = {
                "drop": value.drop_connection_first,
                "rate": value.rate_limit_first,
                "server": value.server_errors_first,
                "malformed": value.malformed_json_first,
            }
            self._error_rng = random.Random(self.seed)

    def _take(self, name: str) -> bool:
        with self._lock:
            if self._remaining[name] > 0:
                self._remaining[name] -= 1
                return True
            return False

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log_entries.append(entry)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log_entries)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log_entries)

    def clear_log(self) -> None:
        with self._lock:
            self._log_entries.clear()

    # -- serving --------------------------------------------------------------------------

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], key: str | None, raw_path: str
    ) -> _Answer | None:
        """The response for one request, or None to drop the connection."""
        faults = self._faults
        if faults.latency_s:
            self._stopping.wait(faults.latency_s)
        if faults.hang_s:
            self._stopping.wait(faults.hang_s)
        if self._take("drop"):
            return None
        if faults.redirect_to:
            return 302, {"Location": faults.redirect_to.rstrip("/") + raw_path}, "text/html", b""
        # Auth comes first, as in DRF: a bad key never learns whether the path exists.
        if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return self._refuse(401, "Invalid API key.")
        if self._take("rate"):
            return self._refuse(429, "Request was throttled.", {"Retry-After": faults.retry_after})
        if self._take("server"):
            return _json(faults.server_error_status, {"detail": "Service unavailable."})
        if faults.error_rate:
            with self._lock:
                failing = self._error_rng.random() < faults.error_rate
            if failing:
                return _json(500, {"detail": "A server error occurred."})
        if path.startswith(CALL_PATH):
            return self._call(method, path.removeprefix(CALL_PATH))
        route = self._routes.get(path)
        if route is None:
            return self._refuse(404, "Not found.")
        if method != "GET":
            return self._refuse(405, f'Method "{method}" not allowed.', {"Allow": "GET"})
        try:
            body = route(query, faults.reject_window_days_over)
        except SandboxBadRequest as exc:
            return self._refuse(exc.status, exc.detail)
        if faults.non_json:
            return 200, {}, "text/html; charset=utf-8", _HTML
        if faults.wrong_shape:
            return _json(200, _WRONG_SHAPES.get(path, {"results": []}))
        pad = b""
        if faults.large_response_pad and isinstance(body, dict):
            body["_pad"] = "x" * faults.large_response_pad
        elif faults.large_response_pad:
            pad = b" " * faults.large_response_pad
        encoded = json.dumps(body).encode() + pad
        if faults.malformed_json or self._take("malformed"):
            encoded = encoded[: max(1, len(encoded) // 2)]
        return 200, {}, "application/json", encoded

    def _refuse(self, status: int, detail: str, headers: dict[str, str] | None = None) -> _Answer:
        return _json(status, error_body(detail, self.error_bodies), headers)

    @property
    def _routes(self) -> dict[str, Callable[[dict[str, list[str]], int | None], Any]]:
        return {
            USAGE_PATH: self._usage,
            AGENT_USAGE_PATH: self._agent_usage,
            CONCURRENCY_PATH: self._concurrency,
            BILLING_USAGE_PATH: self._billing,
            CALLS_PATH: self._list_calls,
            INVOICES_PATH: self._invoices,
            ACCOUNT_PATH: self._account,
        }

    def _call(self, method: str, call_id: str) -> _Answer:
        if not call_id:  # /api/calls/ is no path of the API (the list is /api/calls)
            return self._refuse(404, "Not found.")
        if method != "DELETE":
            return _json(405, {"detail": f'Method "{method}" not allowed.'}, {"Allow": "DELETE"})
        try:
            self.delete_calls([call_id])
        except KeyError:
            return _json(404, {"detail": "Not found."})
        return 204, {}, "", b""

    def _snapshot(self) -> tuple[list[Call], datetime]:
        with self._lock:
            return self._calls, self._now

    @staticmethod
    def _check_window(
        calls: list[Call], now: datetime, query: dict[str, list[str]], limit: int | None
    ) -> None:
        # The fault `reject_window_days_over`, for the endpoints that take fromDate/toDate filters.
        if limit is not None:
            f = parse_filters(query)
            lo = f.from_dt or (calls[0].created if calls else now)
            hi = f.to_dt or now
            if hi - lo > timedelta(days=limit):
                raise SandboxBadRequest("Date range too large")

    def _usage(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        calls, now = self._snapshot()
        self._check_window(calls, now, query, limit)
        return aggregate(calls, query, now, self.empty_buckets, self.all_time_scope, self.future_buckets)

    def _agent_usage(self, query: dict[str, list[str]], limit: int | None) -> list[dict[str, Any]]:
        calls, now = self._snapshot()
        self._check_window(calls, now, query, limit)
        return agent_usage(
            calls, query, now, self.agents_without_calls, self.agent_empty_days, self.agent_names
        )

    def _concurrency(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        calls, now = self._snapshot()
        return concurrency(
            calls,
            query,
            now,
            self.concurrency_empty_buckets,
            self.concurrency_end,
            self.concurrency_max_days,
            self.concurrency_history_days,
        )

    def _billing(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        calls, now = self._snapshot()
        return billing_usage(calls, query, now, self.billing_empty_days, self.future_buckets)

    def _absolute(self, path: str) -> str:
        if self._faults.next_origin:
            return self._faults.next_origin.rstrip("/") + path
        host = getattr(self._request_host, "value", None) or self.origin.removeprefix("http://")
        return f"http://{host}{path}"

    def _list_calls(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        calls, now = self._snapshot()
        self._check_window(calls, now, query, limit)
        return calls_page(
            calls,
            query,
            now,
            self._absolute(CALLS_PATH),
            self.agent_names,
            self.running_calls,
            self.calls_default_sort,
            self.calls_page_size_max,
            self.next_keeps_filters,
        )

    def _invoices(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        calls, now = self._snapshot()
        return invoices_page(
            calls,
            self.history_start,
            now,
            self.seed,
            query,
            self._absolute(INVOICES_PATH),
            self.invoice_amount_unit,
            self.next_keeps_filters,
        )

    def _account(self, query: dict[str, list[str]], limit: int | None) -> dict[str, Any]:
        calls, now = self._snapshot()
        return account(calls, now, self.seed, self.allowed_concurrent_calls)

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="ultravox-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes requests sleeping in latency or hang faults
        server.shutdown()
        server.server_close()
        server.close_open_sockets()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """`http://host:port`, e.g. for another sandbox's `Faults(redirect_to=...)`."""
        if self._server is None:
            raise RuntimeError("Sandbox is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """Base URL of the API, ending in `/api` like `https://api.ultravox.ai/api`."""
        return self.origin + "/api"
