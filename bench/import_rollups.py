"""Import rate with and without the rollups, A/B in the same run.

Three ways of importing the same demo trail through the app's insert path (`ingest.insert_documents`,
batches of IMPORT_BATCH_SIZE), each into a fresh audit collection with the app's indexes, on one
embedded SecantusDB store, the ways alternating round after round so that a busy machine weighs on
each alike:

- `events`: no rollups (`rollups.apply` does nothing): the rate before the rollups existed;
- `upserts`: the rollups as first merged: one `$inc` upsert per rollup key and per session of a batch;
- `no-anomaly-set`: the current path without the hour set of the anomaly detectors
  (`user_host_program`): what that set costs;
- `insert-first`: the current `rollups.apply`: the documents of new keys inserted, upserts only for
  the keys that already exist.

    .venv/bin/python bench/import_rollups.py --events 20000 --rounds 3
    .venv/bin/python bench/import_rollups.py --events 200000 --rounds 2

Prints each run's rate and, per way, the median rate and its ratio to `events`.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.pop("MONGODB_URI", None)

import rollups  # noqa: E402
from config import settings  # noqa: E402
from database import AUDIT_INDEXES, Store  # noqa: E402
from demo_data import generate  # noqa: E402
from ingest import insert_documents  # noqa: E402

Apply = Callable[[Any, list[dict[str, Any]], str | None], Coroutine[Any, Any, None]]


async def no_rollups(store: Any, docs: list[dict[str, Any]], lease: str | None = None) -> None:
    if lease is not None:
        await rollups.release(store, lease)


async def upsert_every_key(store: Any, docs: list[dict[str, Any]], lease: str | None = None) -> None:
    """`rollups.apply` as first merged: one upsert per key, even for the keys that are new."""
    if lease is not None:
        await rollups.release(store, lease)
    if not docs:
        return
    rollup_writes, session_writes = await asyncio.to_thread(rollups._writes, docs, settings.tz)
    writes = [
        store[rollups.rollups_name(store.audit_name)].bulk_write(
            [op for _, op in rollup_writes], ordered=False
        )
    ]
    if session_writes:
        sessions = store[rollups.sessions_name(store.audit_name)]
        writes.append(sessions.bulk_write([op for _, op in session_writes], ordered=False))
    await asyncio.gather(*writes)
    await store.meta.update_one(
        {"_id": rollups._meta_id(store.audit_name)}, {"$inc": {"events": len(docs)}}, upsert=True
    )
    rollups.forget(store)


async def without_anomaly_set(store: Any, docs: list[dict[str, Any]], lease: str | None = None) -> None:
    """`rollups.apply` before the anomaly detectors' hour set (`user_host_program`) was added."""
    dims = rollups.HOUR_SETS.pop("user_host_program")
    try:
        await APPLY(store, docs, lease)
    finally:
        rollups.HOUR_SETS["user_host_program"] = dims


APPLY = rollups.apply  # ingest calls `rollups.apply` through the module, which one_run replaces
WAYS: dict[str, Apply] = {
    "events": no_rollups,
    "upserts": upsert_every_key,
    "no-anomaly-set": without_anomaly_set,
    "insert-first": APPLY,
}


async def one_run(store: Store, way: str, run: int, events: list[dict[str, Any]]) -> float:
    db = store.db
    assert db is not None
    store.audit_name = f"bench_{way.replace('-', '_')}_{run}"
    await db.drop_collection(store.audit_name)
    for keys in AUDIT_INDEXES:
        await store.audit.create_index(keys)
    await rollups.reset(store)
    original = rollups.apply
    rollups.apply = WAYS[way]  # type: ignore[assignment]  # ingest calls it through the module
    try:
        started = time.perf_counter()
        inserted, _ = await insert_documents(store, [dict(e) for e in events])
        rate = inserted / (time.perf_counter() - started)
    finally:
        rollups.apply = original
    if way not in ("events", "no-anomaly-set"):
        report = await rollups.check(store) if len(events) <= 20_000 else None
        assert report is None or report.ok, report
    for name in (
        store.audit_name,
        rollups.rollups_name(store.audit_name),
        rollups.sessions_name(store.audit_name),
    ):
        await db.drop_collection(name)
    return rate


async def main(args: argparse.Namespace) -> None:
    events = generate(n_events=args.events, days=30, seed=42)
    store = Store(uri=None, db_name="bench_import", data_dir=tempfile.mkdtemp(prefix="bench-import-"))
    await store.start()
    rates: dict[str, list[float]] = {way: [] for way in args.ways}
    try:
        for run in range(args.rounds):
            order = args.ways if run % 2 == 0 else list(reversed(args.ways))
            for way in order:
                rate = await one_run(store, way, run, events)
                rates[way].append(rate)
                print(f"round {run + 1}, {way:>12}: {rate:8,.0f} events/s", flush=True)
    finally:
        await store.close()
    print(
        f"\n{args.events:,} events, batches of {settings.IMPORT_BATCH_SIZE}, {args.rounds} rounds alternated"
    )
    base = statistics.median(rates["events"]) if "events" in rates else None
    print("| way | median events/s | runs | vs events |")
    print("|---|---|---|---|")
    for way, values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        ratio = f"{statistics.median(values) / base:.0%}" if base else "-"
        print(f"| {way} | {statistics.median(values):,.0f} | {runs} | {ratio} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ways", type=lambda s: s.split(","), default=list(WAYS))
    asyncio.run(main(parser.parse_args()))
