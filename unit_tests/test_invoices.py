"""invoices: GET /accounts/me/billing/invoices, every invoice at each sync (full refresh), read
page by page through `next`, by an allow-list that leaves invoiceUrl out."""

from __future__ import annotations

from typing import Any

import pytest

from unit_tests.conftest import (
    API_KEY,
    INVOICES_URL,
    all_text,
    errors,
    make_config,
    query,
    records,
    run_discover,
    run_read,
    schema_errors,
    states,
)

INVOICE_LINK = "https://invoice.stripe.com/i/acct_1Secret/live_YWNjdF9zZWNyZXQ"


def api_invoice(number: str, **fields: Any) -> dict[str, Any]:
    return {
        "invoiceDate": "2025-02-01T00:00:05Z",
        "amount": 12550,
        "billingReason": "subscription_cycle",
        "invoiceNumber": number,
        "invoiceStatus": "paid",
        "invoiceUrl": f"{INVOICE_LINK}-{number}",
        **fields,
    }


def page(results: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    return {"results": results, "next": next_url, "previous": None}


def read(config=None, **kwargs):
    return run_read(config or make_config(), streams=["invoices"], **kwargs)


def test_every_invoice_of_every_page_with_only_its_listed_fields(api):
    second = f"{INVOICES_URL}?cursor=cD0yMDI1&pageSize=100"
    api.register(
        url=INVOICES_URL,
        response_list=[
            {
                "json": page(
                    [api_invoice("UVX-0001"), api_invoice("UVX-0002", invoiceStatus="unpaid", amount=0)],
                    second,
                )
            },
            {
                "json": page(
                    [api_invoice("UVX-0003", billingReason="manual", invoiceDate="2025-03-01T01:00:00+01:00")]
                )
            },
        ],
    )
    output = read()
    assert errors(output) == []
    assert [r.url for r in api.requests] == [f"{INVOICES_URL}?pageSize=100", second]
    assert [r.headers["X-API-Key"] for r in api.requests] == [API_KEY, API_KEY]
    assert records(output, "invoices") == [
        {
            "invoiceNumber": "UVX-0001",
            "invoiceDate": "2025-02-01T00:00:05Z",
            "amount": 12550,
            "billingReason": "subscription_cycle",
            "invoiceStatus": "paid",
        },
        {
            "invoiceNumber": "UVX-0002",
            "invoiceDate": "2025-02-01T00:00:05Z",
            "amount": 0,
            "billingReason": "subscription_cycle",
            "invoiceStatus": "unpaid",
        },
        {
            "invoiceNumber": "UVX-0003",
            "invoiceDate": "2025-03-01T00:00:00Z",
            "amount": 12550,
            "billingReason": "manual",
            "invoiceStatus": "paid",
        },
    ]
    for record in records(output, "invoices"):
        assert list(record) == ["invoiceNumber", "invoiceDate", "amount", "billingReason", "invoiceStatus"]
        assert schema_errors("invoices", record) == []
    assert "invoice.stripe.com" not in all_text(output)


def test_a_next_without_the_page_size_gets_it_once(api):
    api.register(
        url=INVOICES_URL,
        response_list=[
            {"json": page([api_invoice("UVX-0001")], f"{INVOICES_URL}?cursor=abc")},
            {"json": page([api_invoice("UVX-0002")])},
        ],
    )
    output = read()
    assert errors(output) == []
    assert [query(r) for r in api.requests] == [
        {"pageSize": ["100"]},
        {"cursor": ["abc"], "pageSize": ["100"]},
    ]


def test_one_listing_whatever_the_dates_and_filters(api):
    api.register(url=INVOICES_URL, json=page([api_invoice("UVX-0001")]))
    config = make_config(
        start_date="2024-01-01",
        end_date="2025-03-05",
        window_days=1,
        agent_ids=["0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01"],
        search="x",
    )
    output = read(config)
    assert errors(output) == []
    assert [query(r) for r in api.requests] == [{"pageSize": ["100"]}]


def test_full_refresh_only_and_no_cursor_state(api):
    [stream] = [s for s in run_discover(make_config()).catalog.catalog.streams if s.name == "invoices"]
    assert [m.value for m in stream.supported_sync_modes] == ["full_refresh"]
    assert stream.source_defined_primary_key == [["invoiceNumber"]]
    assert "invoiceUrl" not in stream.json_schema["properties"]
    api.register(url=INVOICES_URL, json=page([api_invoice("UVX-0001")]))
    output = read(incremental=True)
    assert states(output, "invoices") == [{"__ab_no_cursor_state_message": True}]


def test_a_next_off_the_api_origin_is_refused(api):
    api.register(
        url=INVOICES_URL, json=page([api_invoice("UVX-0001")], "https://billing.example/invoices?cursor=x")
    )
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox's answer from {INVOICES_URL} links its next page on https://billing.example:443, not "
            "on https://api.ultravox.ai:443, the origin of api_url. The connector does not follow it (nor "
            "send the API key there); please report this response.",
        )
    ]
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("fields", "name", "shown", "expected"),
    [
        ({"amount": 125.5}, "amount", "125.5", "an integer"),
        ({"amount": "12550"}, "amount", "'12550'", "an integer"),
        ({"amount": None}, "amount", "None", "an integer"),
        ({"invoiceNumber": 7}, "invoiceNumber", "7", "a string"),
        ({"invoiceStatus": None}, "invoiceStatus", "None", "a string"),
        (
            {"invoiceDate": "2025-02-01"},
            "invoiceDate",
            "'2025-02-01'",
            "an RFC 3339 date-time with a UTC offset",
        ),
    ],
)
def test_a_wrong_type_stops_the_stream_quoting_it(api, fields, name, shown, expected):
    api.register(url=INVOICES_URL, json=page([api_invoice("UVX-0001", **fields)]))
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a invoices record whose {name} is {shown}, not {expected}. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]


def test_a_body_of_another_shape_is_a_system_error_naming_the_endpoint(api):
    api.register(url=INVOICES_URL, json=[api_invoice("UVX-0001")])
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox answered {INVOICES_URL} with a body the connector does not expect "
            "(it expects a JSON object with results): it is a JSON list.",
        )
    ]
