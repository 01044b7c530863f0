"""Anomaly detection at scale: where a cold `anomalies.detect` spends its time, baseline from the
events or from the rollups.

A demo trail (30 days, ending at a fixed instant) is loaded once through the app's insert path into
an embedded SecantusDB kept in `--data-dir` (reused by later runs of the same size). Then one cold
7-day detection per way runs its store queries one at a time, each timed (where the time goes), and
the baseline summary and the whole `detect` are timed cold both ways, alternated round after round.

    .venv/bin/python bench/anomalies.py --events 200000 --data-dir /tmp/bench-anomalies
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.pop("MONGODB_URI", None)

import anomalies  # noqa: E402
import anomaly_queries  # noqa: E402
import rollups  # noqa: E402
from config import settings  # noqa: E402
from database import Store  # noqa: E402
from demo_data import generate  # noqa: E402
from ingest import insert_documents  # noqa: E402

END = datetime(2025, 3, 20, 16, 37, tzinfo=UTC)


async def _median(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        anomalies.clear_cache()
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


async def load(store: Store, n: int) -> None:
    held = await store.audit.estimated_document_count()
    if held == n:
        print(f"trail of {n:,} events already loaded", flush=True)
        return
    await store.audit.delete_many({})
    await rollups.reset(store)
    events = await asyncio.to_thread(generate, n_events=n, days=30, seed=42, end=END)
    started = time.perf_counter()
    inserted, _ = await insert_documents(store, events)
    print(f"loaded {inserted:,} events at {inserted / (time.perf_counter() - started):,.0f} ev/s", flush=True)


def _label(pipeline: list[dict[str, Any]]) -> str:
    """Which detector a pipeline belongs to, from its first stages."""
    text = repr(pipeline[:3])
    for needle, label in (
        ("'LOGON'", "failed logons"),
        ("'GRANT'", "watched actions"),
        ("$facet", "refine (off hours / new pair)"),
        ("'INSERT'", "mass DML"),
        ("'SYS'", "privileged SYS"),
        ("'SYSTEM'", "privileged SYSTEM"),
        ("dateTrunc", "summary from the events"),
        ("user_host_program", "summary from the rollups"),
    ):
        if needle in text:
            return label
    return "other"


async def serialized(store: Store, use_rollups: bool) -> dict[str, list[float]]:
    """One cold `detect` with its store queries run one at a time, timed per detector."""
    lock = asyncio.Lock()
    spent: dict[str, list[float]] = {}
    original = store.aggregate

    async def timed(pipeline: list[dict[str, Any]], collection: str | None = None) -> list[dict[str, Any]]:
        async with lock:
            started = time.perf_counter()
            rows = await original(pipeline, collection)
            spent.setdefault(_label(pipeline), []).append(time.perf_counter() - started)
            return rows

    store.aggregate = timed  # type: ignore[method-assign]
    try:
        anomalies.clear_cache()
        await anomalies.detect(store, start=END - timedelta(days=7), end=END, use_rollups=use_rollups)
    finally:
        del store.aggregate
    return spent


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir) / str(args.events)
    store = Store(uri=None, db_name="bench", data_dir=str(data_dir))
    await store.start()
    watcher: asyncio.Task | None = None
    try:
        await load(store, args.events)
        if not await rollups.usable(store):  # built before the anomaly set existed
            started = time.perf_counter()
            await rollups.rebuild(store)
            print(f"rollups rebuilt in {time.perf_counter() - started:.1f} s", flush=True)
        watcher = asyncio.create_task(rollups.watch(store))  # as the service: the trust count off the path
        docs = await store[rollups.rollups_name(store.audit_name)].count_documents(
            {"g": "h", "r": "user_host_program"}
        )
        print(f"h/user_host_program: {docs:,} documents ({docs / 30:,.0f} per day of trail)")
        start, end = END - timedelta(days=7), END
        since_day = anomaly_queries._local(start - timedelta(days=settings.ANOMALY_BASELINE_DAYS)).date()
        q = anomaly_queries._Queries(store, await store.audit_version())
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "failed logons": lambda: store.aggregate(anomaly_queries._failed_logons_pipeline(start, end)),
            "watched actions": lambda: store.aggregate(anomaly_queries._watched_pipeline(start, end)),
            "privileged SYS": lambda: store.aggregate(
                anomaly_queries._privileged_pipeline("SYS", start, end)
            ),
        }
        for label, call in queries.items():
            median, _ = await _median(args.runs, call)
            print(f"| {label} | {median * 1000:,.0f} ms |", flush=True)
        for use in (False, True):
            spent = await serialized(store, use)
            for label, each in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
                ms = f"{sum(each) * 1000:,.0f} ms"
                print(f"| rollups={use}, one query at a time: {label} | {ms} | {len(each)} |")
        ways = {
            "summary, events": lambda: anomaly_queries._summary(q, since_day, end, use_rollups=False),
            "summary, rollups": lambda: anomaly_queries._summary(q, since_day, end),
            "detect, events": lambda: anomalies.detect(store, start=start, end=end, use_rollups=False),
            "detect, rollups": lambda: anomalies.detect(store, start=start, end=end),
        }
        times: dict[str, list[float]] = {way: [] for way in ways}
        for run in range(args.runs):  # the ways alternated, so a busy machine weighs on each alike
            for way in ways if run % 2 == 0 else reversed(list(ways)):
                times[way].append((await _median(1, ways[way]))[0])
        print(f"\n{args.events:,} events, 7-day window, cold, {args.runs} rounds alternated")
        print("| call | median | runs |\n|---|---|---|")
        for way, values in times.items():
            runs = ", ".join(f"{v:.2f}" for v in values)
            print(f"| {way} | {statistics.median(values) * 1000:,.0f} ms | {runs} |")
    finally:
        if watcher is not None:
            watcher.cancel()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", default="/tmp/bench-anomalies")
    asyncio.run(main(parser.parse_args()))
