"""Import throughput: `import_file` on a JSONL export vs a bare `insert_many` of the same documents.

Both write 100,000 generated events into the same embedded SecantusDB store, into collections with
the same indexes, in batches of the same size. Target: the import reaches at least 70 % of the bare
rate. Run: `.venv/bin/python bench/ingest.py [--events N]`.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import settings
from database import AUDIT_INDEXES, Store
from demo_data import generate
from ingest import import_file


async def prepare(store: Store, name: str) -> None:
    await store.db.drop_collection(name)
    for keys in AUDIT_INDEXES:
        await store.db[name].create_index(keys)


async def main(n_events: int, batch_size: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    events = generate(n_events=n_events, days=30, seed=11)
    export = tmp / "export.jsonl"
    with export.open("w") as out:
        for e in events:
            row = {k: v for k, v in e.items() if k != "_id"}
            row["event_timestamp"] = row["event_timestamp"].isoformat()
            out.write(json.dumps(row) + "\n")

    store = Store(uri=settings.MONGODB_URI, db_name="bench_ingest", data_dir=str(tmp / "data"))
    await store.start()
    kind = store.kind
    try:
        await prepare(store, "bare")
        started = time.perf_counter()
        for i in range(0, len(events), batch_size):
            await store.db["bare"].insert_many(events[i : i + batch_size], ordered=False)
        bare = len(events) / (time.perf_counter() - started)

        store.audit_name = "imported"
        await prepare(store, "imported")
        started = time.perf_counter()
        with export.open("rb") as f:
            result = await import_file(store, f, tz=settings.tz, batch_size=batch_size)
        imported = result.inserted / (time.perf_counter() - started)
        assert result.inserted == len(events) and not result.errors, result
    finally:
        await store.close()

    print(f"events: {len(events)}, batch size: {batch_size}, store: {kind}")
    print(f"bare insert_many:      {bare:8.0f} events/s")
    print(f"import_file (JSONL):   {imported:8.0f} events/s  (parse + normalise + id + insert)")
    print(f"import / bare:         {imported / bare:8.1%}  (target >= 70%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=settings.IMPORT_BATCH_SIZE)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch_size))
