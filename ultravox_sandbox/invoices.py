"""Ground truth of `GET /api/accounts/me/billing/invoices` (PaginatedInvoiceList), from the log.

One invoice per calendar month (UTC) whose billed minutes are not zero, from the month the log
starts in up to the clock's month. A month's minutes are /accounts/me/billing/usage's
`totalMinutes` for it (`billing_usage` itself, fromDate = the 1st, toDate = the next 1st), so the
invoices agree with that endpoint's daily minutes by construction; the price is
PRICE_PER_MINUTE_USD (0.05).

- amount: an integer. "cents": minutes x 5, rounded half up (minutes are tenths, so half cents
  occur); "dollars" (`invoice_amount_unit`): minutes x 0.05 rounded half up to whole dollars,
  not the cents rounded again.
- invoiceDate: the first instant of the month billed, `2025-03-01T00:00:00Z`.
- invoiceStatus: "unpaid" for the clock's month (its amount grows as calls are billed), "paid"
  for the earlier ones. A past month's amount can still change: a call created late on its last
  day is billed when it ends, and a deleted call leaves its month's minutes.
- billingReason: "subscription_create" for the first invoice, then "subscription_cycle".
- invoiceNumber: `<8 hex digits of the seed>-<YYYYMM>`, the same whatever the clock.
- invoiceUrl: a hosted-invoice URL carrying a token (a link to the bill, not for syncing).

Order: newest first. Pagination as pagination.py: pageSize default 10, at most 100 (openapi's
bounds), cursor; no `total` (PaginatedInvoiceList has none).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .billing import billing_usage
from .calls import Call
from .ledger import rfc3339
from .pagination import paginate

PRICE_PER_MINUTE_USD = Decimal("0.05")
INVOICE_AMOUNT_UNITS = ("cents", "dollars")
INVOICES_PAGE_SIZE = 10
INVOICES_PAGE_SIZE_MAX = 100


def invoice_prefix(seed: int) -> str:
    return hashlib.sha256(f"account:{seed}".encode()).hexdigest()[:8].upper()


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def amount(minutes: Decimal, unit: str) -> int:
    """The integer amount of `minutes` billed, in `unit`."""
    per_unit = PRICE_PER_MINUTE_USD * (100 if unit == "cents" else 1)
    return int((minutes * per_unit).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def monthly_minutes(calls: Sequence[Call], since: date, now: datetime) -> dict[date, Decimal]:
    """The billed minutes of every month from `since`'s to now's (first days as keys), zeros too."""
    now = now.astimezone(UTC)
    months: dict[date, Decimal] = {}
    month = since.replace(day=1)
    while month <= now.date():
        params = {"fromDate": [month.isoformat()], "toDate": [_next_month(month).isoformat()]}
        total = billing_usage(calls, params, now, empty_days="omit")["totalMinutes"]
        # repr: the shortest decimal of the float, which is the exact sum of tenths.
        months[month] = Decimal(repr(total))
        month = _next_month(month)
    return months


def invoices(
    calls: Sequence[Call], since: date, now: datetime, seed: int, unit: str = "cents"
) -> list[dict[str, Any]]:
    """Every invoice, oldest first."""
    if unit not in INVOICE_AMOUNT_UNITS:
        raise ValueError(f"invoice_amount_unit must be one of {INVOICE_AMOUNT_UNITS}")
    current = now.astimezone(UTC).date().replace(day=1)
    out: list[dict[str, Any]] = []
    for month, minutes in monthly_minutes(calls, since, now).items():
        if not minutes:
            continue
        number = f"{invoice_prefix(seed)}-{month:%Y%m}"
        token = hashlib.sha256(f"invoice:{seed}:{number}".encode()).hexdigest()[:24]
        out.append(
            {
                "invoiceDate": rfc3339(datetime.combine(month, datetime.min.time(), UTC)),
                "amount": amount(minutes, unit),
                "billingReason": "subscription_cycle" if out else "subscription_create",
                "invoiceNumber": number,
                "invoiceStatus": "unpaid" if month == current else "paid",
                "invoiceUrl": f"https://invoice.stripe.com/i/acct_sandbox/live_{token}?s=ap",
            }
        )
    return out


def invoices_page(
    calls: Sequence[Call],
    since: date,
    now: datetime,
    seed: int,
    params: dict[str, list[str]],
    url: str,
    unit: str = "cents",
    keep_query: bool = True,
) -> dict[str, Any]:
    """The `PaginatedInvoiceList` body for `params`; `url` is the endpoint's absolute URL."""
    every = invoices(calls, since, now, seed, unit)
    page, following, preceding = paginate(
        every,
        [i["invoiceDate"] for i in every],
        params,
        url,
        INVOICES_PAGE_SIZE,
        INVOICES_PAGE_SIZE_MAX,
        descending=True,
        keep_query=keep_query,
    )
    return {"results": page, "next": following, "previous": preceding}
