"""Chat throughput and latency with no LLM: cached and uncached answers beside a bare endpoint.

Starts the app in one uvicorn process (embedded store, the 20,000-event demo trail seeded, no
OPENAI_API_KEY), with one extra route `GET /bench/bare` returning a constant JSON through the same
app, middleware and server. Then, from this process:

1. bare:     GET /bench/bare, C concurrent clients for D seconds;
2. cached:   POST /api/chat/message with one question already answered once (cache hit),
             C concurrent clients for D seconds;
3. uncached: POST /api/chat/message with distinct time-bounded questions ("... le 12 novembre ?"),
             each asked once, one at a time (latency) — every one is a cache miss.

Prints requests/s and p50/p99 latency for each, the cached rate as a share of the bare rate, and the
hit/miss counters the service reports. Asserts nothing on time.

    .venv/bin/python bench/chat.py [--concurrency 16] [--seconds 8] [--uncached 160]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sse import free_port, wait_ready  # noqa: E402

MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
          "octobre", "novembre", "décembre")  # fmt: skip
TEMPLATES = (
    "Combien de connexions échouées le {d} ?",
    "Quels sont les utilisateurs les plus actifs le {d} ?",
    "Quelles sont les actions les plus fréquentes le {d} ?",
    "Quelles erreurs ont eu lieu le {d} ?",
    "Combien de sessions le {d} ?",
    "Quels objets ont été modifiés le {d} ?",
    "Activité par schéma le {d}",
    "Quels programmes clients ont été utilisés le {d} ?",
)
CACHED_QUESTION = "Quels sont les utilisateurs les plus actifs hier ?"


def bench_app():
    """The service's app with one bare route, for `uvicorn --factory bench.chat:bench_app`."""
    from main import app

    @app.get("/bench/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    return app


def start_server(port: int, tmp: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "SEED_DEMO_DATA": "true",
        "DEMO_EVENTS": "20000",
        "EMBEDDED_DATA_DIR": str(tmp / "data"),
        "SQLITE_DB_PATH": str(tmp / "cache.db"),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": "bench-admin-password",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("MONGODB_URI", "ORACLE_DSN", "ORACLE_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench.chat:bench_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def uncached_questions(n: int, tz: str) -> list[str]:
    today = datetime.now(ZoneInfo(tz)).date()
    days = [today - timedelta(days=i) for i in range(1, 29)]
    out = []
    for day in days:
        for template in TEMPLATES:
            out.append(template.format(d=f"{day.day} {MONTHS[day.month - 1]}"))
    return out[:n]


def summary(name: str, latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    latencies = sorted(latencies)
    n = len(latencies)
    p50 = latencies[n // 2] * 1000 if n else float("nan")
    p99 = latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan")
    rate = n / elapsed if elapsed else 0.0
    print(
        f"{name:<10} {n:>6} req  {rate:>8.1f} req/s  p50 {p50:>7.1f} ms  p99 {p99:>7.1f} ms  errors {errors}"
    )
    return {"rate": rate, "p50": p50, "p99": p99}


async def load(http: httpx.AsyncClient, make_request, *, concurrency: int, seconds: float):
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            r = await make_request()
            if r.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, errors


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        proc = start_server(port, Path(tmp))
        try:
            print("starting the service and seeding the 20,000-event demo trail...")
            await wait_ready(base, proc)
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
                r = await http.post(
                    "/api/auth/login", data={"username": "admin", "password": "bench-admin-password"}
                )
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                info = (await http.get("/api/info")).json()
                events = info["counts"]["audit_events"]
                print(f"store {info['store']}, {events} events, llm {info['llm_enabled']}")

                async def chat(question: str) -> httpx.Response:
                    return await http.post("/api/chat/message", json={"message": question}, headers=headers)

                # warm-up: NLP model and gazetteer, the cached question, connections
                for q in ("bonjour", CACHED_QUESTION, CACHED_QUESTION):
                    await chat(q)
                for _ in range(50):
                    await http.get("/bench/bare")

                print(f"\nconcurrency {args.concurrency}, {args.seconds:.0f} s per phase")
                bare = summary(
                    "bare",
                    *await load(
                        http,
                        lambda: http.get("/bench/bare"),
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                    ),
                )
                cached = summary(
                    "cached",
                    *await load(
                        http,
                        lambda: chat(CACHED_QUESTION),
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                    ),
                )
                share = cached["rate"] / bare["rate"] * 100
                print(f"cached rate = {share:.0f} % of the bare rate (target >= 40 %)")

                questions = uncached_questions(args.uncached, info["timezone"])
                latencies, misses_seen, errors = [], 0, 0
                bounded = 0
                started = time.perf_counter()
                for q in questions:
                    t = time.perf_counter()
                    r = await chat(q)
                    if r.status_code != 200:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - t)
                    body = r.json()
                    misses_seen += not body["cached"]
                    bounded += bool(body.get("plan") and (body["plan"].get("period") or {}).get("start"))
                elapsed = time.perf_counter() - started
                print(
                    f"\nuncached: {len(questions)} distinct questions, one at a time, "
                    f"{misses_seen} misses, {bounded} time-bounded"
                )
                unc = summary("uncached", latencies, elapsed, errors)
                print(f"uncached p50 = {unc['p50']:.1f} ms (target < 150 ms)")
                stats = (await http.get("/api/cache/stats", headers=headers)).json()
                print(
                    f"\nservice cache stats: hits {stats['hits']}, misses {stats['misses']}, "
                    f"hit rate {stats['hit_rate']:.2%}, entries {stats['entries']}"
                )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--uncached", type=int, default=160)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
