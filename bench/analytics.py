"""Median time of each /api/audit endpoint beside the same pipelines run directly with PyMongo.

The app runs with its embedded SecantusDB store (a child process) in a temporary data directory,
loaded with a generated trail (100,000 events over 30 days by default). Each endpoint is called
through the app (ASGI, with a bearer token, JSON out); the direct figure runs the very pipelines
the endpoint ran (captured on a warm-up call) with a synchronous PyMongo client, one after the
other. Calls alternate endpoint / direct to share any load drift.

    .venv/bin/python bench/analytics.py [--events 100000] [--runs 5] [--data-dir DIR]
"""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure(data_dir: Path) -> None:
    os.environ.pop("MONGODB_URI", None)
    os.environ.update(
        EMBEDDED_DATA_DIR=str(data_dir),
        SQLITE_DB_PATH=str(data_dir / "cache.db"),
        SEED_DEMO_DATA="false",
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        ADMIN_USERNAME="bench",
        ADMIN_PASSWORD="bench-password-1",
        LOG_LEVEL="WARNING",
        DEBUG="false",
        OPENAI_API_KEY="",
    )


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-analytics-"))
    configure(data_dir)
    import httpx
    from pymongo import MongoClient

    import analytics
    import anomalies
    from demo_data import generate
    from ingest import insert_documents
    from main import app
    from models import AuditFilters

    try:
        async with app.router.lifespan_context(app):
            store = app.state.store
            meta = await store.meta.find_one({"_id": "bench"})
            if meta is None or meta.get("events") != args.events:
                end = datetime.now(UTC).replace(microsecond=0)
                print(f"generating and loading {args.events:,} events over 30 days ...", flush=True)
                t0 = time.perf_counter()
                events = await asyncio.to_thread(generate, n_events=args.events, days=30, seed=42, end=end)
                await store.audit.delete_many({})
                await insert_documents(store, events)
                del events
                await store.meta.replace_one(
                    {"_id": "bench"}, {"events": args.events, "end": end}, upsert=True
                )
                print(f"loaded in {time.perf_counter() - t0:.0f} s", flush=True)
            else:
                end = meta["end"]
            total = await store.audit.count_documents({})
            uri = store.embedded.uri if store.embedded else os.environ["MONGODB_URI"]
            direct = MongoClient(uri, tz_aware=True)[store.db_name][store.audit_name]

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
                r = await client.post(
                    "/api/auth/login", data={"username": "bench", "password": "bench-password-1"}
                )
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                start7 = end - timedelta(days=7)
                win = {"start": start7.isoformat(), "end": end.isoformat()}
                f7 = AuditFilters(start=start7, end=end)
                f24 = AuditFilters(start=end - timedelta(hours=24), end=end)
                host = f7.model_copy(update={"userhost": ["pc-tpetit"]})

                async def pipelines_of(coro_factory):
                    """The pipelines one call runs, captured on a warm-up call."""
                    seen: list[list[dict]] = []
                    original = store.audit.__class__.aggregate

                    async def spy(self, pipeline, *a, **kw):
                        seen.append(pipeline)
                        return await original(self, pipeline, *a, **kw)

                    store.audit.__class__.aggregate = spy
                    try:
                        await coro_factory()
                    finally:
                        store.audit.__class__.aggregate = original
                    return seen

                cases = [
                    ("search 7d", "/api/audit/search", win,
                     lambda: analytics.search_events(store, f7)),
                    ("search 24h", "/api/audit/search",
                     {"start": f24.start.isoformat(), "end": end.isoformat()},
                     lambda: analytics.search_events(store, f24)),
                    ("search 7d userhost", "/api/audit/search", {**win, "userhost": "pc-tpetit"},
                     lambda: analytics.search_events(store, host)),
                    ("count 7d", "/api/audit/count", win, lambda: analytics.count_events(store, f7)),
                    ("stats 7d (10 fields, 3 buckets)", "/api/audit/stats", win,
                     lambda: analytics.statistics(store, f7)),
                    ("stats/dbusername 7d", "/api/audit/stats/dbusername", win,
                     lambda: analytics.count_by(store, f7, "dbusername")),
                    ("user-activity 7d", "/api/audit/user-activity", win,
                     lambda: analytics.user_activity(store, f7)),
                    ("objects 7d", "/api/audit/objects", win, lambda: analytics.top_objects(store, f7)),
                    ("objects/changes 7d", "/api/audit/objects/changes", win,
                     lambda: analytics.object_changes(store, f7)),
                    ("sessions 7d", "/api/audit/sessions", win, lambda: analytics.sessions(store, f7)),
                    ("off-hours 7d", "/api/audit/off-hours", win, lambda: analytics.off_hours(store, f7)),
                    ("anomalies 7d (+30d history)", "/api/audit/anomalies", win,
                     lambda: anomalies.detect_anomalies(store, start=start7, end=end)),
                ]  # fmt: skip
                print(f"\n{total:,} events in the embedded store ({store.kind}), until {end:%Y-%m-%d %H:%M}")
                print(f"median of {args.runs} runs each, ms\n")
                print(f"{'endpoint':34s} {'endpoint':>9s} {'direct':>9s} {'ratio':>6s}  pipelines")
                worst = 0.0
                for name, path, params, factory in cases:
                    if args.only and args.only not in name:
                        continue
                    pipelines = await pipelines_of(factory)
                    r = await client.get(path, params=params, headers=headers)
                    assert r.status_code == 200, r.text
                    ep, dr = [], []
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        r = await client.get(path, params=params, headers=headers)
                        r.raise_for_status()
                        ep.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        for p in pipelines:
                            list(direct.aggregate(p, allowDiskUse=True))
                        dr.append(time.perf_counter() - t0)
                    e_ms, d_ms = statistics.median(ep) * 1000, statistics.median(dr) * 1000
                    worst = max(worst, e_ms / d_ms)
                    print(
                        f"{name:34s} {e_ms:9.1f} {d_ms:9.1f} {e_ms / d_ms:6.2f}  {len(pipelines)}", flush=True
                    )
                print(f"\nworst ratio endpoint / direct: {worst:.2f} (target <= 1.30)")
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", help="keep the loaded store here and reuse it on the next run")
    parser.add_argument("--only", help="run the cases whose name contains this")
    asyncio.run(main(parser.parse_args()))
