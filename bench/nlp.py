"""Questions read per second on one core (target ≥ 300): the plan reader (understand.read), which serves
the chat and /api/audit/analyze, over the blind sets.

Run: .venv/bin/python bench/nlp.py [--seconds 10] [--compare-time]
The gazetteer is built from the demo trail (demo_data.generate) through Gazetteer.from_values, the
code path the service uses after reading the known values.
"""

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import settings
from time_parser import parse_time


def compare_time_parsers(questions: list[str], now: datetime) -> None:
    """Per-question cost of the time layer: these rules, dateparser, Duckling."""

    def per_call(fn, n: int = 300) -> float:
        started = time.perf_counter()
        for i in range(n):
            fn(questions[i % len(questions)])
        return (time.perf_counter() - started) / n * 1e6

    tz = settings.tz
    print(f"time rules:  {per_call(lambda q: parse_time(q, now=now, tz=tz)):8.0f} µs / question")
    try:
        from dateparser.search import search_dates

        opts = {
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "past",
            "TIMEZONE": settings.APP_TIMEZONE,
        }
        search_dates("hier", languages=["fr"], settings=opts)
        cost = per_call(lambda q: search_dates(q, languages=["fr"], settings=opts), 100)
        print(f"dateparser:  {cost:8.0f} µs / question")
    except ImportError:
        print("dateparser: not installed")
    try:
        import duckling

        tzs = duckling.load_time_zones("/usr/share/zoneinfo")
        ref = duckling.parse_ref_time(tzs, settings.APP_TIMEZONE, int(now.timestamp()))
        lang = duckling.parse_lang("FR")
        ctx = duckling.Context(ref, duckling.parse_locale("FR", duckling.default_locale_lang(lang)))
        dims = duckling.parse_dimensions(["time"])
        print(f"duckling:    {per_call(lambda q: duckling.parse(q, ctx, dims, False)):8.0f} µs / question")
    except ImportError:
        print("duckling: not installed")


def bench_reader(seconds: float) -> None:
    """understand.read over every blind-set question (with its previous turns), on one core."""
    from tests.blind_eval import NOW, TZ, records, trail
    from understand import read

    _, gaz = trail()
    turns = [(r.get("previous") or [], r["question"]) for r in records("all")]
    for _, q in turns[:50]:
        read(q, gaz, now=NOW, tz=TZ)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for previous, q in turns:
            plan = None
            for p in previous:
                plan = read(p, gaz, now=NOW, tz=TZ, previous=plan).plan
            read(q, gaz, now=NOW, tz=TZ, previous=plan)
            done += 1 + len(previous)
    elapsed = time.perf_counter() - started
    print(f"plan reader: {done} questions in {elapsed:.1f} s on one core: {done / elapsed:.0f} questions/s "
          f"({elapsed / done * 1000:.2f} ms each)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--compare-time", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    bench_reader(args.seconds)
    if args.compare_time:
        from tests.blind_eval import NOW, records

        compare_time_parsers([r["question"] for r in records("all")], NOW)


if __name__ == "__main__":
    main()
