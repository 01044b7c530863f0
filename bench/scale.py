"""Scale: import rate with the rollups maintained, store memory, and each question's latency.

For each size, a fresh embedded SecantusDB (default settings, child process) is loaded with the demo
generator's trail (30 days) through the app's insert path, then each question is timed (median of
`--runs`, uncached) read from the rollups and from the events (`use_rollups=False`).

    .venv/bin/python bench/scale.py --sizes 20000,200000 [--runs 3]
    .venv/bin/python bench/scale.py --sizes 1000000 --runs 1 --rollups-only   # ~15 min

Store memory is the embedded server's resident set (VmRSS) after the questions and its peak (VmHWM).
"""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.pop("MONGODB_URI", None)


def _mem(pid: int) -> tuple[float, float]:
    """(resident, peak) in GB of a process."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 2**20
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


async def _median(runs: int, call: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


async def _timed(label: str, runs: int, call: Callable[[], Awaitable[Any]]) -> float | None:
    """The median, or None (printed) when the store gives up on the query (at 1M, an all-time scan of
    the events can outlast the client's wait)."""
    try:
        return await _median(runs, call)
    except Exception as exc:  # a benchmark reports and goes on
        print(f"  {label}: failed ({type(exc).__name__}: {str(exc)[:80]})", flush=True)
        return None


async def one_size(n: int, runs: int, data_dir: Path, events_side: bool = True) -> dict[str, Any]:
    import analytics
    import anomalies
    import rollups
    from config import settings
    from database import Store
    from demo_data import generate
    from ingest import insert_documents
    from models import AuditFilters
    from plan import Filters, Period, Plan
    from plan_runner import run_plan

    store = Store(uri=None, db_name="bench", data_dir=str(data_dir))
    await store.start()
    try:
        end = datetime.now(UTC)
        events = await asyncio.to_thread(generate, n_events=n, days=30, seed=42, end=end)
        await rollups.reset(store)
        started = time.perf_counter()
        inserted, _ = await insert_documents(store, events)
        rate = inserted / (time.perf_counter() - started)
        counts = {}
        for grain, sets in rollups.GRAINS.items():
            for name in sets:
                coll = store[rollups.rollups_name(store.audit_name)]
                counts[f"{grain}/{name}"] = await coll.count_documents({"g": grain, "r": name})
        tz = settings.tz
        today = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        yesterday = Period(start=today - timedelta(days=1), end=today)
        week = Period(start=today - timedelta(days=7), end=today)
        user = events[len(events) // 2]["dbusername"]
        plans = {
            "failed logons yesterday": Plan(
                filters=Filters(include={"action_name": ["LOGON"]}, failed=True), period=yesterday
            ),
            "most active users, all time": Plan(group_by=["dbusername"], limit=10),
            "count per action, all time": Plan(group_by=["action_name"]),
            "a user's week": Plan(
                group_by=["day"], filters=Filters(include={"dbusername": [user]}), period=week
            ),
            "longest sessions": Plan(measure="duration", group_by=["session_id"], limit=10),
            "session durations per user, this week": Plan(
                measure="duration", group_by=["dbusername"], period=week
            ),
            "off-hours users, all time": Plan(group_by=["dbusername"], filters=Filters(off_hours=True)),
        }
        print(f"# {n:,} events imported: {rate:,.0f} events/s", flush=True)
        rows: list[tuple[str, float | None, float | None]] = []
        # The service's watcher keeps the trust verdict fresh; its count holds the store meanwhile.
        started = time.perf_counter()
        await rollups.check_trust(store)
        rows.append(("trust recount (background, holds the store)", time.perf_counter() - started, None))
        watcher = asyncio.create_task(rollups.watch(store))
        for label, plan in plans.items():
            fast = await _timed(label, runs, partial(run_plan, store, plan))
            via = (await run_plan(store, plan)).query.get("collection", "") if fast is not None else ""
            slow = (
                await _timed(label, runs, partial(run_plan, store, plan, use_rollups=False))
                if events_side or not via.endswith(("_rollups", "_sessions"))
                else None
            )
            rows.append((label, fast if via.endswith(("_rollups", "_sessions")) else None, slow))
            print(f"  {label}: {_fmt(rows[-1][1])} | {_fmt(slow)}", flush=True)
        cold: dict[bool, float | None] = {}
        for use in (True, False) if events_side else (True,):

            async def detect(use: bool = use) -> None:
                anomalies.clear_cache()
                await anomalies.detect(store, start=end - timedelta(days=7), end=end, use_rollups=use)

            cold[use] = await _timed("anomalies", 1, detect)
        rows.append(("anomalies 7 days, cold", cold[True], cold.get(False)))
        search = await _timed("search", runs, lambda: analytics.search_page(store, AuditFilters(), limit=50))
        rows.append(("search, all time (first page + total)", search, search))
        watcher.cancel()
        rss, peak = _mem(store.embedded._proc.pid) if store.embedded and store.embedded._proc else (0, 0)
        return {"n": n, "rate": rate, "rss": rss, "peak": peak, "rows": rows, "counts": counts}
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    results = []
    for n in args.sizes:
        data_dir = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-"))
        try:
            results.append(await one_size(n, args.runs, data_dir, events_side=not args.rollups_only))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        r = results[-1]
        memory = f"store {r['rss']:.2f} GB (peak {r['peak']:.2f})"
        print(f"# {n:,} events: import {r['rate']:,.0f} events/s; {memory}")
        print("  rollup documents: " + ", ".join(f"{k} {v:,}" for k, v in r["counts"].items()), flush=True)
    sizes = " | ".join(f"{r['n']:,} rollups | {r['n']:,} events" for r in results)
    print(f"\n| question | {sizes} |")
    print("|---|" + "---|" * (2 * len(results)))
    for i, (label, *_rest) in enumerate(results[0]["rows"]):
        cells = " | ".join(f"{_fmt(r['rows'][i][1])} | {_fmt(r['rows'][i][2])}" for r in results)
        print(f"| {label} | {cells} |")
    print("| import, events/s | " + " | ".join(f"{r['rate']:,.0f} | " for r in results) + "|")
    print(
        "| store memory GB (peak) | "
        + " | ".join(f"{r['rss']:.2f} ({r['peak']:.2f}) | " for r in results)
        + "|"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[20_000, 200_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rollups-only", action="store_true", help="skip the events side of questions the rollups answer"
    )
    asyncio.run(main(parser.parse_args()))
