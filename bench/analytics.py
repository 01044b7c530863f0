"""Median time of each /api/audit endpoint beside the same pipelines run directly with PyMongo.

The app runs with its embedded SecantusDB store (a child process) in a temporary data directory,
loaded with a generated trail (100,000 events over 30 days by default). Each endpoint is called
through the app (ASGI, with a bearer token, JSON out); the direct figure runs the very pipelines
the endpoint ran (captured on a warm-up call) with a synchronous PyMongo client, one after the
other. Calls alternate endpoint / direct to share any load drift.

    .venv/bin/python bench/analytics.py [--events 100000] [--runs 5] [--data-dir DIR]

Anomaly detection caches its hourly summaries per day (see anomaly_queries.py): the table's anomalies row
clears that cache before every call, so endpoint and direct do the same work. `--anomalies` times
detect_anomalies alone for 24h, 7d and 30d windows: cold (empty cache), the same call repeated, and a
window sliding by 90 s per call (what a chat question or a dashboard refresh does), with the number of
store queries per call.

    .venv/bin/python bench/analytics.py --anomalies --events 20000 [--seed 7]
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
            if meta is None or (meta.get("events"), meta.get("seed", 42)) != (args.events, args.seed):
                end = datetime.now(UTC).replace(microsecond=0)
                print(f"generating and loading {args.events:,} events over 30 days ...", flush=True)
                t0 = time.perf_counter()
                events = await asyncio.to_thread(
                    generate, n_events=args.events, days=30, seed=args.seed, end=end
                )
                await store.audit.delete_many({})
                await insert_documents(store, events)
                del events
                await store.meta.replace_one(
                    {"_id": "bench"}, {"events": args.events, "seed": args.seed, "end": end}, upsert=True
                )
                print(f"loaded in {time.perf_counter() - t0:.0f} s", flush=True)
            else:
                end = meta["end"]
            total = await store.audit.count_documents({})
            if args.anomalies:
                await bench_anomalies(store, end, total, args.runs)
                return
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
                    anomalies.clear_cache()
                    pipelines = await pipelines_of(factory)
                    r = await client.get(path, params=params, headers=headers)
                    assert r.status_code == 200, r.text
                    ep, dr = [], []
                    for _ in range(args.runs):
                        anomalies.clear_cache()  # cold: the same work as the direct pipelines
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


async def bench_anomalies(store, end: datetime, total: int, runs: int) -> None:
    """detect_anomalies alone: cold, repeated, sliding; median ms and store queries per call."""
    import anomalies

    queries = 0
    original = anomalies._aggregate

    async def counting(store_, pipeline):
        nonlocal queries
        queries += 1
        return await original(store_, pipeline)

    anomalies._aggregate = counting
    print(f"\n{total:,} events in the embedded store ({store.kind}), until {end:%Y-%m-%d %H:%M}")
    print(f"detect_anomalies, median of {runs} calls, ms (store queries per call)\n")
    print(f"{'window':8s} {'cold':>16s} {'repeated':>16s} {'sliding 90 s':>16s}  findings")
    for label, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30))):
        figures = []
        for mode in ("cold", "repeated", "sliding"):
            anomalies.clear_cache()
            await anomalies.detect_anomalies(store, start=end - span, end=end)  # warms the cache
            times, counts = [], []
            for i in range(runs):
                shift = timedelta(seconds=90 * (i + 1)) if mode == "sliding" else timedelta(0)
                if mode == "cold":
                    anomalies.clear_cache()
                queries = 0
                t0 = time.perf_counter()
                found = await anomalies.detect_anomalies(store, start=end - span + shift, end=end + shift)
                times.append(time.perf_counter() - t0)
                counts.append(queries)
            figures.append(f"{statistics.median(times) * 1000:9.1f} ({statistics.median(counts):3.0f})")
        print(f"{label:8s} {figures[0]:>16s} {figures[1]:>16s} {figures[2]:>16s}  {len(found)}", flush=True)
    anomalies._aggregate = original


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", help="keep the loaded store here and reuse it on the next run")
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (the tests' demo trail: 7)")
    parser.add_argument("--anomalies", action="store_true", help="time detect_anomalies alone (see above)")
    asyncio.run(main(parser.parse_args()))
