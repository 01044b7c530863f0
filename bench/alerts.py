"""Time of the continuous detection (alerts.run_detection) and of the reports on a generated trail.

The store is the embedded SecantusDB (a child process) in a temporary data directory, loaded with the
demo trail (20,000 events over 30 days by default). Printed: the first run (every hour of the last
ALERTS_SCAN_DAYS is new), a run with nothing new, a run after a small import (a burst of failed
logons: the incremental case), and each report in JSON and PDF over 7 days.

    .venv/bin/python bench/alerts.py [--events 20000] [--seed 7]
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    os.environ.pop("MONGODB_URI", None)
    os.environ.update(EMBEDDED_DATA_DIR=str(data_dir), SEED_DEMO_DATA="false", LOG_LEVEL="WARNING",
                      SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")  # fmt: skip
    import alerts
    import reports
    from database import make_store
    from demo_data import generate
    from ingest import event_id, insert_documents

    store = make_store()
    await store.start()
    try:
        await alerts.ensure_indexes(store)
        end = datetime.now(UTC)
        await insert_documents(store, generate(n_events=args.events, days=30, seed=args.seed, end=end))

        async def timed(label: str, coro) -> object:
            started = time.perf_counter()
            result = await coro
            print(f"{label:<44} {1000 * (time.perf_counter() - started):9.1f} ms")
            return result

        first = await timed("first run (whole scan window new)", alerts.run_detection(store))
        print(f"  {first.changed_hours} changed hours, {first.alerts_created} alerts")
        await timed("run with nothing new", alerts.run_detection(store))
        at = end - timedelta(hours=3)
        burst = []
        for i in range(8):
            doc = {"event_timestamp": at + timedelta(seconds=10 * i), "dbusername": "BENCH", "userhost": "x",
                   "action_name": "LOGON", "return_code": 1017, "session_id": 10 + i}  # fmt: skip
            doc["_id"] = event_id(doc)
            burst.append(doc)
        await insert_documents(store, burst)
        after = await timed("run after importing a burst (8 events)", alerts.run_detection(store))
        print(f"  {after.changed_hours} changed hours, {after.alerts_created} alerts")
        for kind in reports.REPORTS:
            objects = ["SALES.CUSTOMERS"] if kind == "watched_objects" else None
            report = await timed(
                f"report {kind} 7d (json)",
                reports.build(store, kind, start=end - timedelta(days=7), end=end, objects=objects),
            )
            await timed(f"report {kind} 7d (pdf)", reports.render(report, "pdf"))
    finally:
        await store.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main(parser.parse_args()))
