"""`python -m ultravox_sandbox --port 0`: serve the sandbox until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
from datetime import UTC, datetime, timedelta

from .account import DEFAULT_ALLOWED_CONCURRENT_CALLS
from .agent_usage import AGENT_EMPTY_DAY_MODES, AGENTS_WITHOUT_CALLS_MODES
from .billing import BILLING_EMPTY_DAY_MODES
from .concurrency import CONCURRENCY_EMPTY_BUCKET_MODES, CONCURRENCY_END_MODES
from .invoices import INVOICE_AMOUNT_UNITS
from .ledger import CALL_SORTS, CALLS_PAGE_SIZE_MAX, RUNNING_CALLS_MODES
from .server import ERROR_BODY_SHAPES, SANDBOX_API_KEY, Faults, Sandbox
from .usage import ALL_TIME_SCOPES, EMPTY_BUCKET_MODES, FUTURE_BUCKET_MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ultravox_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=400, help="history length before today")
    parser.add_argument("--calls-per-day", type=float, default=20)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--empty-buckets", choices=EMPTY_BUCKET_MODES, default="zero")
    parser.add_argument("--all-time-scope", choices=ALL_TIME_SCOPES, default="range")
    parser.add_argument(
        "--agents-without-calls",
        choices=AGENTS_WITHOUT_CALLS_MODES,
        default="omit",
        help="/agents/usage: agents with no call in the range",
    )
    parser.add_argument(
        "--agent-empty-days",
        choices=AGENT_EMPTY_DAY_MODES,
        default="omit",
        help="/agents/usage: days without calls",
    )
    parser.add_argument(
        "--concurrency-empty-buckets",
        choices=CONCURRENCY_EMPTY_BUCKET_MODES,
        default="zero",
        help="/accounts/me/usage/concurrency: buckets without calls",
    )
    parser.add_argument(
        "--concurrency-end",
        choices=CONCURRENCY_END_MODES,
        default="exclusive",
        help="/accounts/me/usage/concurrency: is a bucket starting exactly at `end` listed",
    )
    parser.add_argument(
        "--concurrency-max-days",
        type=float,
        default=None,
        help="/accounts/me/usage/concurrency: longer start..end ranges answer 400 (default: no limit)",
    )
    parser.add_argument(
        "--concurrency-history-days",
        type=float,
        default=None,
        help="/accounts/me/usage/concurrency: buckets older than this are left out (default: no limit)",
    )
    parser.add_argument(
        "--billing-empty-days",
        choices=BILLING_EMPTY_DAY_MODES,
        default="zero",
        help="/accounts/me/billing/usage: days without billed minutes",
    )
    parser.add_argument(
        "--odd-values",
        action="store_true",
        help='an agent named "" and, every Sunday, a credit that makes the day\'s billed minutes negative',
    )
    parser.add_argument(
        "--error-bodies",
        choices=ERROR_BODY_SHAPES,
        default="detail",
        help="the shape of 4xx bodies, as Django REST Framework may render them",
    )
    parser.add_argument(
        "--future-buckets",
        choices=FUTURE_BUCKET_MODES,
        default="omit",
        help="/accounts/me/usage/calls and /accounts/me/billing/usage: requested days and hours after now",
    )
    parser.add_argument(
        "--calls-page-size-max",
        type=int,
        default=CALLS_PAGE_SIZE_MAX,
        help="/api/calls: a larger pageSize is cut to this, silently (the default page is 100)",
    )
    parser.add_argument(
        "--next-keeps-filters",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="/api/calls and /accounts/me/billing/invoices: next/previous links keep the request's "
        "parameters (DRF), or with --no-next-keeps-filters carry only pageSize and cursor",
    )
    parser.add_argument(
        "--running-calls",
        choices=RUNNING_CALLS_MODES,
        default="listed",
        help="/api/calls: calls still running",
    )
    parser.add_argument(
        "--calls-default-sort",
        choices=CALL_SORTS,
        default="created",
        help="/api/calls: the order without a valid sort parameter (write --calls-default-sort=-created)",
    )
    parser.add_argument(
        "--invoice-amount-unit",
        choices=INVOICE_AMOUNT_UNITS,
        default="cents",
        help="/accounts/me/billing/invoices: what the integer amount counts",
    )
    parser.add_argument(
        "--allowed-concurrent-calls",
        type=int,
        default=DEFAULT_ALLOWED_CONCURRENT_CALLS,
        help="/accounts/me: allowedConcurrentCalls (0 for null: no cap)",
    )
    parser.add_argument("--api-key", default=SANDBOX_API_KEY)
    parser.add_argument("--access-log", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    now = datetime.now(UTC)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    for signum in stop_signals:
        # A real handler, because an ignored signal (SIGINT in a background job) is never queued.
        signal.signal(signum, lambda *_: None)
    # Blocked signals are taken with sigwait below; setting an Event from a handler instead can
    # deadlock against the main thread's own wait. Threads started later inherit the mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    sandbox = Sandbox(
        api_key=args.api_key,
        seed=args.seed,
        history_start=(now - timedelta(days=args.days)).date(),
        now=now,
        calls_per_day=args.calls_per_day,
        empty_buckets=args.empty_buckets,
        all_time_scope=args.all_time_scope,
        agents_without_calls=args.agents_without_calls,
        agent_empty_days=args.agent_empty_days,
        concurrency_empty_buckets=args.concurrency_empty_buckets,
        concurrency_end=args.concurrency_end,
        concurrency_max_days=args.concurrency_max_days,
        concurrency_history_days=args.concurrency_history_days,
        billing_empty_days=args.billing_empty_days,
        odd_values=args.odd_values,
        error_bodies=args.error_bodies,
        future_buckets=args.future_buckets,
        calls_page_size_max=args.calls_page_size_max,
        next_keeps_filters=args.next_keeps_filters,
        running_calls=args.running_calls,
        calls_default_sort=args.calls_default_sort,
        invoice_amount_unit=args.invoice_amount_unit,
        allowed_concurrent_calls=args.allowed_concurrent_calls or None,
        faults=Faults(latency_s=args.latency),
        host=args.host,
        port=args.port,
        access_log=args.access_log,
    ).start()
    print(f"ULTRAVOX_SANDBOX_URL={sandbox.url}", flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
