"""The /api/audit routes: authentication, windows, filters, errors, the shapes clients read."""

from collections import Counter
from datetime import timedelta

import pytest

from config import settings


def window(demo, days: int = 7) -> dict[str, str]:
    return {"start": (demo.end - timedelta(days=days)).isoformat(), "end": demo.end.isoformat()}


def in_window(demo, days: int = 7) -> list[dict]:
    start = demo.end - timedelta(days=days)
    return [e for e in demo.events if start <= e["event_timestamp"] < demo.end]


@pytest.mark.parametrize(
    "path",
    [
        "/search",
        "/stats",
        "/stats/dbusername",
        "/count",
        "/user-activity",
        "/objects",
        "/sessions",
        "/anomalies",
    ],
)
async def test_routes_need_a_token(client, path):
    r = await client.get(f"/api/audit{path}")
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"


async def test_search_pages_with_total(client, auditor_headers, demo):
    params = {**window(demo), "dbusername": "TPETIT,SCOTT", "failed": "false", "limit": 25, "page": 3}
    r = await client.get("/api/audit/search", params=params, headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = sorted(
        (e for e in in_window(demo) if e["dbusername"] in ("TPETIT", "SCOTT") and e["return_code"] == 0),
        key=lambda e: (e["event_timestamp"], e["_id"]),
        reverse=True,
    )
    assert body["total"] == len(expected)
    assert body["pages"] == -(-len(expected) // 25)
    assert [i["id"] for i in body["items"]] == [e["_id"] for e in expected[50:75]]
    assert body["items"][0]["event_timestamp"].endswith(("Z", "+00:00"))
    assert body["query"]["collection"] == "actions_audit"


async def test_search_sql_words_and_repeated_params(client, auditor_headers, demo):
    params = [*window(demo).items(), ("sql_text", 'delete "sales.orders"'), ("userhost", "pc-tpetit")]
    params.append(("userhost", "pc-mmartin"))
    r = await client.get("/api/audit/search", params=params, headers=auditor_headers)
    expected = [
        e
        for e in in_window(demo)
        if e["userhost"] in ("pc-tpetit", "pc-mmartin")
        and "delete" in (e["sql_text"] or "").lower()
        and "sales.orders" in (e["sql_text"] or "").lower()
    ]
    assert r.json()["total"] == len(expected) > 400


async def test_stats(client, auditor_headers, demo):
    params = {**window(demo), "fields": "dbusername,return_code", "buckets": "weekday,hour", "limit": 3}
    r = await client.get("/api/audit/stats", params=params, headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    events = in_window(demo)
    assert body["total"] == len(events)
    assert body["fields"]["dbusername"]["distinct"] == len({e["dbusername"] for e in events})
    assert body["fields"]["return_code"]["top"][0] == [0, sum(e["return_code"] == 0 for e in events)]
    assert [w for w, _ in body["buckets"]["weekday"]] == [
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche",
    ]
    hours = Counter(e["event_timestamp"].astimezone(settings.tz).hour for e in events)
    assert body["buckets"]["hour"] == [[h, hours.get(h, 0)] for h in range(24)]


async def test_query_result_routes(client, auditor_headers, demo):
    events = in_window(demo, 2)
    params = {**window(demo, 2), "limit": 3}
    for path, first_column in [
        ("/stats/action_name", "action_name"),
        ("/distinct/object_schema", "object_schema"),
        ("/user-activity", "dbusername"),
        ("/objects", "object_schema"),
        ("/objects/changes", "event_timestamp"),
        ("/sessions", "session_id"),
        ("/off-hours", "dbusername"),
        ("/timeline", "day"),
        ("/count", "count"),
    ]:
        r = await client.get(f"/api/audit{path}", params=params, headers=auditor_headers)
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert body["columns"][0] == first_column, path
        assert body["query"]["pipeline"], path
    r = await client.get(
        "/api/audit/count", params={**window(demo, 2), "action_name": "LOGON"}, headers=auditor_headers
    )
    assert r.json()["total"] == sum(e["action_name"] == "LOGON" for e in events)


async def test_timeframe_ends_now(client, auditor_headers, demo):
    r = await client.get("/api/audit/count", params={"timeframe": "1h"}, headers=auditor_headers)
    assert r.status_code == 200
    r30 = await client.get("/api/audit/count", params={"timeframe": "30d"}, headers=auditor_headers)
    rall = await client.get("/api/audit/count", params={"timeframe": "all"}, headers=auditor_headers)
    assert r.json()["total"] <= r30.json()["total"] <= rall.json()["total"] == len(demo.events)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"timeframe": "2w"}, "Période"),
        ({"start": "hier"}, "Date « start » invalide"),
        ({"start": "2025-03-02", "end": "2025-03-01"}, "doit précéder"),
        ({"return_code": "abc"}, "entiers"),
        ({"sort": "-password"}, "Tri inconnu"),
        ({"fields": "password"}, "inconnue"),
    ],
)
async def test_bad_values_are_422_in_french(client, auditor_headers, params, needle):
    path = "/api/audit/stats" if "fields" in params else "/api/audit/search"
    r = await client.get(path, params=params, headers=auditor_headers)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]
    assert r.json()["code"] == "validation_error"


async def test_unknown_field_and_event(client, auditor_headers, demo):
    r = await client.get("/api/audit/stats/password", headers=auditor_headers)
    assert r.status_code == 422 and "Champ inconnu" in r.json()["detail"]
    r = await client.get("/api/audit/events/nope", headers=auditor_headers)
    assert r.status_code == 404
    event = demo.events[-1]
    r = await client.get(f"/api/audit/events/{event['_id']}", headers=auditor_headers)
    assert r.status_code == 200 and r.json()["dbusername"] == event["dbusername"]


async def test_anomalies_route(client, auditor_headers, demo):
    params = {**window(demo), "severity": "high"}
    r = await client.get("/api/audit/anomalies", params=params, headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["anomalies"]) == body["by_severity"]["high"] >= 5
    assert {a["severity"] for a in body["anomalies"]} == {"high"}
    assert {"failed_logon_burst", "mass_dml", "new_host_or_program", "sensitive_action"} <= set(
        body["by_type"]
    )
    first = body["anomalies"][0]
    assert set(first) >= {
        "type",
        "severity",
        "title",
        "explanation",
        "dbusername",
        "userhost",
        "start",
        "end",
        "evidence",
    }
    r = await client.get("/api/audit/anomalies", params={"timeframe": "all"}, headers=auditor_headers)
    assert r.status_code == 422


async def test_anomalies_over_the_whole_trail_learn_from_its_start(client, auditor_headers, demo):
    """30 days on a 30-day trail: the first days are the baseline, and the response says so."""
    r = await client.get("/api/audit/anomalies", params={"timeframe": "30d"}, headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["baseline"]["kind"] == "learning" and body["baseline"]["explanation"]
    new = [a for a in body["anomalies"] if a["type"] == "new_host_or_program"]
    assert [(a["dbusername"], a["userhost"], a["severity"]) for a in new] == [
        ("MMARTIN", "laptop-ext-042", "high")
    ]
    r = await client.get("/api/audit/anomalies", params={"timeframe": "7d"}, headers=auditor_headers)
    assert r.json()["baseline"]["kind"] == "history"
