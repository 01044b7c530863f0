"""Import rate with and without the rollups, A/B in the same run.

Three ways of importing the same demo trail through the app's insert path (`ingest.insert_documents`,
batches of IMPORT_BATCH_SIZE), each into a fresh audit collection with the app's indexes, on one
embedded SecantusDB store, the ways alternating round after round so that a busy machine weighs on
each alike:

- `events`: no rollups (a lease per batch, taken and ended, nothing counted): the rate without them;
- `per-batch`: the rollups written after each batch (`rollups.apply`: the documents of new keys
  inserted, upserts for the keys that exist), the path before `rollups.Accumulator`;
- `accumulated`: the current path: counts summed over `rollups.FLUSH_EVENTS` inserted events, computed
  while the store inserts the batch, written in the background while the next batches are inserted.

    .venv/bin/python bench/import_rollups.py --events 20000 --rounds 3
    .venv/bin/python bench/import_rollups.py --events 200000 --rounds 2
    .venv/bin/python bench/import_rollups.py --profile   # where the time goes, phase by phase

Prints each run's rate and, per way, the median rate and its ratio to `events`.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymongo.errors import BulkWriteError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.pop("MONGODB_URI", None)

import ingest  # noqa: E402
import rollups  # noqa: E402
from config import settings  # noqa: E402
from database import AUDIT_INDEXES, Store  # noqa: E402
from demo_data import generate  # noqa: E402

Insert = Callable[[Any, list[dict[str, Any]], Any], Coroutine[Any, Any, tuple[int, int]]]
TIMES: dict[str, float] = defaultdict(float)  # --profile: seconds per phase
COUNTS: dict[str, int] = defaultdict(int)  # --profile: documents per phase
PROFILE = False


@contextmanager
def phase(name: str, docs: int = 0) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        TIMES[name] += time.perf_counter() - started
        COUNTS[name] += docs


async def _insert_many(store: Any, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events the store took (the app's path, with the duplicates it refuses)."""
    try:
        with phase("events insert_many", len(docs)):
            await store.audit.insert_many(docs, ordered=False)
        return docs
    except BulkWriteError as exc:
        refused = {e["index"] for e in exc.details.get("writeErrors", [])}
        return [d for i, d in enumerate(docs) if i not in refused]


async def no_rollups(store: Any, docs: list[dict[str, Any]], counts: Any) -> tuple[int, int]:
    lease = await rollups.begin(store, len(docs))
    inserted = await _insert_many(store, docs)
    await rollups.release(store, lease)
    return len(inserted), len(docs) - len(inserted)


async def per_batch(store: Any, docs: list[dict[str, Any]], counts: Any) -> tuple[int, int]:
    """`ingest._insert` before the accumulator: a batch's rollups written before the next batch."""
    with phase("lease begin", 1):
        lease = await rollups.begin(store, len(docs))
    inserted = await _insert_many(store, docs)
    await rollups.apply(store, inserted, lease=lease)
    return len(inserted), len(docs) - len(inserted)


WAYS: dict[str, Insert | None] = {"events": no_rollups, "per-batch": per_batch, "accumulated": None}


def profiled() -> None:
    """Time the phases of the rollups' writes (overlapping phases overlap in the sums)."""
    begin, count = rollups.begin, rollups.count

    async def timed_insert_or_add(collection: Any, writes: list[rollups.Write]) -> None:
        kind = collection.name.rsplit("_", 1)[-1]
        if not writes:
            return
        try:
            with phase(f"{kind} insert_many", len(writes)):
                await collection.insert_many([doc for doc, _ in writes], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            with phase(f"{kind} upserts of existing keys", len(errors)):
                await collection.bulk_write([writes[e["index"]][1] for e in errors], ordered=False)

    async def timed_begin(store: Any, events: int, **kwargs: Any) -> str:
        with phase("meta: lease taken", 1):
            return await begin(store, events, **kwargs)

    def timed_count(docs: list[dict[str, Any]]) -> rollups._Delta:
        with phase("counts summed (thread)", len(docs)):
            return count(docs)

    rollups._insert_or_add, rollups.begin, rollups.count = timed_insert_or_add, timed_begin, timed_count


async def one_run(store: Store, way: str, run: int, events: list[dict[str, Any]]) -> float:
    db = store.db
    assert db is not None
    store.audit_name = f"bench_{way.replace('-', '_')}_{run}"
    await db.drop_collection(store.audit_name)
    for keys in AUDIT_INDEXES:
        await store.audit.create_index(keys)
    await rollups.reset(store)
    original, flush_events = ingest._insert, rollups.FLUSH_EVENTS
    ingest._insert = WAYS.get(way) or original  # type: ignore[assignment]  # called through the module
    if way.startswith("accumulated-"):  # e.g. accumulated-10000: another FLUSH_EVENTS
        rollups.FLUSH_EVENTS = int(way.split("-")[1])
    try:
        TIMES.clear()
        COUNTS.clear()
        started = time.perf_counter()
        inserted, _ = await ingest.insert_documents(store, [dict(e) for e in events])
        elapsed = time.perf_counter() - started
        rate = inserted / elapsed
    finally:
        ingest._insert, rollups.FLUSH_EVENTS = original, flush_events
    if PROFILE:
        print(f"{way}: {elapsed:.2f} s")
        for name, seconds in TIMES.items():
            print(f"  {name:32} {seconds:6.2f} s {seconds / elapsed:6.1%}  {COUNTS[name]:7,} documents")
    if way != "events" and run == 0:
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
    print("| way | median events/s | runs | vs events | per round vs events (median) |")
    print("|---|---|---|---|---|")
    for way, values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        ratio = f"{statistics.median(values) / base:.0%}" if base else "-"
        # each run against the `events` run of its round: a busy spell weighs on both
        rounds = [v / e for v, e in zip(values, rates["events"], strict=True)] if base else []
        per_round = "-"
        if rounds:
            per_round = ", ".join(f"{r:.0%}" for r in rounds) + f" ({statistics.median(rounds):.0%})"
        print(f"| {way} | {statistics.median(values):,.0f} | {runs} | {ratio} | {per_round} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ways", type=lambda s: s.split(","), default=list(WAYS))
    parser.add_argument("--profile", action="store_true", help="time the phases of each run")
    arguments = parser.parse_args()
    if arguments.profile:
        PROFILE = True
        profiled()
    asyncio.run(main(arguments))
