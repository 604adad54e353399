"""Cursor pagination as Django REST Framework's CursorPagination does it, for the list endpoints
(`/api/calls`, `/api/accounts/me/billing/invoices`).

- `pageSize`: a positive integer; anything else (absent, "0", "-3", "ten") means the default, and
  a larger one is cut to the maximum without a word (DRF's `_positive_int(strict=True, cutoff=max)`).
- `cursor`: opaque, base64 of `p=<position>` (plus `&r=1` for a previous page), as DRF encodes
  it. The position is the sort key of the last item seen (next) or the first (previous): pages are
  keyset pages, not offsets, so calls deleted or created between two requests neither repeat nor
  skip an item. A cursor that does not decode: 404 "Invalid cursor", as DRF answers.
- `next` / `previous`: absolute URLs (the request's Host, as DRF's build_absolute_uri), null on the
  last / first page. With `keep_query` they are the request's URL with the cursor replaced and the
  parameters sorted (DRF's replace_query_param); without it they carry only `pageSize` (if sent)
  and `cursor`, so a client that follows them as they are loses its filters.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import parse_qs, urlencode

from .usage import SandboxNotFound, _last

T = TypeVar("T")


def page_size(params: dict[str, list[str]], default: int, maximum: int) -> int:
    raw = _last(params, "pageSize")
    try:
        size = int(raw) if raw is not None else default
    except ValueError:
        return default
    return default if size <= 0 else min(size, maximum)


def _encode(position: str, reverse: bool) -> str:
    pairs = [("p", position)] + ([("r", "1")] if reverse else [])
    return base64.b64encode(urlencode(pairs).encode()).decode("ascii")


def _decode(cursor: str) -> tuple[str, bool]:
    try:
        parsed = parse_qs(
            base64.b64decode(cursor.encode("ascii"), validate=True).decode(), strict_parsing=True
        )
        (position,) = parsed["p"]
        reverse = parsed.get("r", ["0"]) == ["1"]
    except (binascii.Error, UnicodeError, ValueError, KeyError):
        raise SandboxNotFound("Invalid cursor") from None
    return position, reverse


def _link(url: str, params: dict[str, list[str]], cursor: str, keep_query: bool) -> str:
    kept = {k: v for k, v in params.items() if k != "cursor"} if keep_query else {}
    if not keep_query and "pageSize" in params:
        kept["pageSize"] = params["pageSize"]
    kept["cursor"] = [cursor]
    return f"{url}?{urlencode(sorted(kept.items()), doseq=True)}"


def paginate(
    items: Sequence[T],
    keys: Sequence[str],
    params: dict[str, list[str]],
    url: str,
    default_size: int,
    max_size: int,
    descending: bool = False,
    keep_query: bool = True,
) -> tuple[list[T], str | None, str | None]:
    """(page, next URL, previous URL) of `items`, whose sort `keys` ascend strictly; they are
    listed in that order, or in the opposite one when `descending`. `url` is the page's absolute
    URL without its query."""
    size = page_size(params, default_size, max_size)
    n = len(items)
    raw = _last(params, "cursor")
    position, reverse = (None, False) if raw is None else _decode(raw)
    # Indexes into the listing order (items, or items reversed): `after` is the first item listed
    # after `position`, `before` the end of those listed before it.
    if position is None:
        after = before = 0
    else:
        lo, hi = bisect_left(keys, position), bisect_right(keys, position)
        after, before = (n - lo, n - hi) if descending else (hi, lo)
    start, stop = (max(0, before - size), before) if reverse else (after, min(n, after + size))
    listed = list(reversed(items)) if descending else list(items)
    listed_keys = list(reversed(keys)) if descending else list(keys)
    page = listed[start:stop]
    if not page:
        return [], None, None
    following = _link(url, params, _encode(listed_keys[stop - 1], False), keep_query) if stop < n else None
    preceding = _link(url, params, _encode(listed_keys[start], True), keep_query) if start > 0 else None
    return page, following, preceding
