"""concurrency: GET /accounts/me/usage/concurrency, one record per time bucket, no call filters."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from unit_tests.conftest import (
    CONCURRENCY_URL,
    errors,
    final_state,
    make_config,
    make_state,
    query,
    records,
    run_read,
)


def point(timestamp: str, top: int = 3, joined: int = 2, avg: float = 1.5, avg_joined: float = 0.75) -> dict:
    return {
        "timestamp": timestamp,
        "maxTotalCalls": top,
        "maxJoinedCalls": joined,
        "avgTotalCalls": avg,
        "avgJoinedCalls": avg_joined,
    }


def emitted(api_point: dict, bucket: str = "hour") -> dict:
    """The record of a bucket: the API's `timestamp` as `bucketStart`, and the bucket's size."""
    fields = {k: v for k, v in api_point.items() if k != "timestamp"}
    return {**fields, "bucketStart": api_point["timestamp"], "bucket": bucket}


def serve(api, points: list[dict]) -> None:
    """Answer each window with the points whose timestamp lies in start..end."""

    def answer(request, context):
        q = query(request)
        low = datetime.fromisoformat(q["start"][0].replace("Z", "+00:00"))
        high = datetime.fromisoformat(q["end"][0].replace("Z", "+00:00"))
        inside = [
            p for p in points if low <= datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) <= high
        ]
        return {"timeSeries": inside}

    api.register(url=CONCURRENCY_URL, json=answer)


def read(config=None, **kwargs):
    return run_read(config or make_config(), streams=["concurrency"], **kwargs)


def test_one_record_per_bucket_with_its_size(api):
    serve(api, [point("2025-03-01T00:00:00Z"), point("2025-03-04T23:00:00Z", 5, 5, 4.25, 4.0)])
    output = read()
    assert errors(output) == []
    assert records(output, "concurrency") == [
        emitted(point("2025-03-01T00:00:00Z")),
        emitted(point("2025-03-04T23:00:00Z", 5, 5, 4.25, 4.0)),
    ]
    assert final_state(output, "concurrency") == {"bucketStart": "2025-03-04T23:00:00Z"}
    # In the order the API sends the figures, then the bucket's start and size, as 0.5.0 wrote them.
    assert [list(record) for record in records(output, "concurrency")] == [
        ["maxTotalCalls", "maxJoinedCalls", "avgTotalCalls", "avgJoinedCalls", "bucketStart", "bucket"]
    ] * 2


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2025-03-02T10:00:00+00:00", "2025-03-02T10:00:00Z"),
        ("2025-03-02T10:00:00.000Z", "2025-03-02T10:00:00Z"),
        ("2025-03-02T12:00:00+02:00", "2025-03-02T10:00:00Z"),
    ],
)
def test_timestamps_are_stored_as_rfc_3339_utc(api, sent, stored):
    api.register(url=CONCURRENCY_URL, json={"timeSeries": [point(sent)]})
    [record] = records(read(), "concurrency")
    assert record["bucketStart"] == stored
    assert "timestamp" not in record


@pytest.mark.parametrize("bucket", ["minute", "5min", "hour", "day"])
def test_requests_are_whole_utc_days_with_the_bucket_and_no_call_filters(api, bucket):
    serve(api, [])
    config = make_config(
        start_date="2025-03-01",
        end_date="2025-03-10",
        window_days=4,
        concurrency_bucket=bucket,
        agent_ids=["0b6f7c1e-2a57-4d1a-9a41-5c0e8f3d2a01"],
        search="refund",
        metadata=[{"key": "campaign", "value": "spring"}],
    )
    output = read(config)
    assert errors(output) == []
    assert sorted(sorted(query(r).items()) for r in api.requests) == [
        [("bucket", [bucket]), ("end", [f"{last}T23:59:59Z"]), ("start", [f"{first}T00:00:00Z"])]
        for first, last in [
            ("2025-03-01", "2025-03-04"),
            ("2025-03-05", "2025-03-08"),
            ("2025-03-09", "2025-03-10"),
        ]
    ]


def test_the_default_bucket_is_an_hour(api):
    serve(api, [])
    read(make_config(concurrency_bucket=None))
    assert {query(r)["bucket"][0] for r in api.requests} == {"hour"}


def test_incremental_rereads_lookback_days_of_whole_days(api):
    serve(api, [point("2025-03-03T05:00:00Z"), point("2025-03-05T07:00:00Z")])
    state = make_state(concurrency={"bucketStart": "2025-03-04T05:00:00Z"})
    output = read(make_config(end_date="2025-03-05", lookback_days=2), state=state)
    assert errors(output) == []
    assert [(query(r)["start"][0], query(r)["end"][0]) for r in api.requests] == [
        ("2025-03-02T00:00:00Z", "2025-03-05T23:59:59Z")
    ]
    assert [r["bucketStart"] for r in records(output, "concurrency")] == [
        "2025-03-03T05:00:00Z",
        "2025-03-05T07:00:00Z",
    ]
    assert final_state(output, "concurrency") == {"bucketStart": "2025-03-05T07:00:00Z"}


def test_a_window_refused_as_too_large_is_split(api, sleeps):
    def answer(request, context):
        q = query(request)
        low, high = q["start"][0][:10], q["end"][0][:10]
        if low != high:
            context.status_code = 400
            return {"detail": "Date range too large"}
        return {"timeSeries": [point(f"{low}T00:00:00Z")]}

    api.register(url=CONCURRENCY_URL, json=answer)
    output = read(make_config(start_date="2025-03-01", end_date="2025-03-02", window_days=2))
    assert errors(output) == []
    assert [query(r)["start"][0][:10] + "/" + query(r)["end"][0][:10] for r in api.requests] == [
        "2025-03-01/2025-03-02",
        "2025-03-01/2025-03-01",
        "2025-03-02/2025-03-02",
    ]
    assert [r["bucketStart"] for r in records(output, "concurrency")] == [
        "2025-03-01T00:00:00Z",
        "2025-03-02T00:00:00Z",
    ]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"results": []}, "its top-level keys are ['results']"),
        ({"timeSeries": {}}, "its timeSeries is a JSON dict"),
        ([], "it is a JSON list"),
    ],
)
def test_a_body_of_another_shape_is_a_system_error_naming_the_endpoint(api, body, why):
    api.register(url=CONCURRENCY_URL, json=body)
    output = read(fails=True)
    [(failure_type, message)] = errors(output)
    assert failure_type == "system_error"
    assert message == (
        f"Ultravox answered {CONCURRENCY_URL} with a body the connector does not expect "
        f"(it expects a JSON object with timeSeries): {why}."
    )


def test_negative_figures_sync_as_sent(api):
    # The published ConcurrencyBucket sets no minimum on any of its figures.
    serve(api, [point("2025-03-02T10:00:00Z", top=-1, joined=-2, avg=-0.5, avg_joined=-0.25)])
    output = read()
    assert errors(output) == []
    assert records(output, "concurrency") == [
        emitted(point("2025-03-02T10:00:00Z", top=-1, joined=-2, avg=-0.5, avg_joined=-0.25))
    ]


@pytest.mark.parametrize(
    ("bad", "field", "shown", "expected"),
    [
        (
            point("2025-03-01 10:00"),
            "timestamp",
            "'2025-03-01 10:00'",
            "an RFC 3339 date-time with a UTC offset",
        ),
        (
            point("2025-03-01T10:00:00"),
            "timestamp",
            "'2025-03-01T10:00:00'",
            "an RFC 3339 date-time with a UTC offset",
        ),
        (point("2025-03-01"), "timestamp", "'2025-03-01'", "an RFC 3339 date-time with a UTC offset"),
        (point("2025-03-01T10:00:00Z", top=3.0), "maxTotalCalls", "3.0", "an integer"),
        (point("2025-03-01T10:00:00Z", joined=True), "maxJoinedCalls", "True", "an integer"),
        (point("2025-03-01T10:00:00Z", avg="0.5"), "avgTotalCalls", "'0.5'", "a number"),
        (
            {k: v for k, v in point("2025-03-01T10:00:00Z").items() if k != "avgJoinedCalls"},
            "avgJoinedCalls",
            "None",
            "a number",
        ),
    ],
)
def test_a_missing_field_or_a_wrong_type_is_a_system_error_quoting_it(api, bad, field, shown, expected):
    api.register(url=CONCURRENCY_URL, json={"timeSeries": [bad]})
    output = read(fails=True)
    assert errors(output) == [
        (
            "system_error",
            f"Ultravox sent a concurrency record whose {field} is {shown}, not {expected}. "
            "The connector stops rather than guess; please report this response shape.",
        )
    ]
    assert records(output, "concurrency") == []


def test_a_month_of_minute_buckets_is_one_request(api):
    first = datetime(2025, 3, 1)
    serve(
        api,
        [point((first + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")) for m in range(0, 3 * 1440, 7)],
    )
    output = read(make_config(start_date="2025-03-01", end_date="2025-03-03", concurrency_bucket="minute"))
    assert errors(output) == []
    assert api.call_count == 1
    assert len(records(output, "concurrency")) == len(range(0, 3 * 1440, 7))
