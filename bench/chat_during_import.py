"""Start-up on a loaded store, and chat answers while an import runs.

1. Starts the service (uvicorn, embedded store, default settings) on an empty data directory with
   `--seed` demo events (the app seeds them through its insert path, rollups maintained), stops it.
2. Starts it again on the same store and times start-up: until /api/health answers, and until the
   first chat answer.
3. Posts an export of `--import-events` new events (JSON Lines, another seed) to /api/audit/import
   and, while that request runs, asks chat questions one at a time (all-time and time-bounded, each
   in a round; the answer cache is emptied before each round, so none is a cache hit).

Prints the start-up times, the import's rate, and the latency of each answer during the import
(with the collection it read: rollups or events) against the same questions before it. Asserts
nothing on time.

    .venv/bin/python bench/chat_during_import.py [--seed 20000] [--import-events 100000]
    .venv/bin/python bench/chat_during_import.py --seed 1000000 --keep /tmp/store-1m   # ~20 min

With `--keep DIR` the store stays in DIR and a later run with the same DIR skips the seeding (the
store then also holds the previous runs' imports).
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sse import free_port, wait_ready  # noqa: E402

QUESTIONS = (
    "Quels sont les utilisateurs les plus actifs ?",
    "Combien d'événements par action ?",
    "Combien de connexions échouées hier ?",
    "Quels utilisateurs travaillent en dehors des heures ouvrées ?",
    "Activité par heure cette semaine",
    "Combien d'événements entre 9h et 12h ce mois-ci ?",
    "Quels programmes clients ont été utilisés cette semaine ?",
    "Combien d'erreurs par utilisateur ce mois-ci ?",
)


def start_server(port: int, data: Path, seed: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "SEED_DEMO_DATA": "true" if seed else "false",
        "DEMO_EVENTS": str(seed or 1),
        "EMBEDDED_DATA_DIR": str(data / "data"),
        "SQLITE_DB_PATH": str(data / "cache.db"),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": "bench-admin-password",
        "LOG_LEVEL": "WARNING",
        "IMPORT_MAX_MB": "1000",
    }
    for name in ("MONGODB_URI", "ORACLE_DSN", "ORACLE_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def write_export(path: Path, n: int, seed: int) -> None:
    from demo_data import generate

    with path.open("w") as out:
        for e in generate(n_events=n, days=30, seed=seed, end=datetime.now(UTC)):
            row = {k: v for k, v in e.items() if k != "_id"}
            row["event_timestamp"] = row["event_timestamp"].isoformat()
            out.write(json.dumps(row) + "\n")


async def login(http: httpx.AsyncClient) -> dict[str, str]:
    r = await http.post("/api/auth/login", data={"username": "admin", "password": "bench-admin-password"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def ask(http: httpx.AsyncClient, headers: dict[str, str], question: str) -> tuple[float, str, bool]:
    """(seconds, collection read, cached) for one chat question."""
    started = time.perf_counter()
    r = await http.post("/api/chat/message", json={"message": question}, headers=headers)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    body = r.json()
    collection = str((body.get("query") or {}).get("collection") or body.get("intent"))
    return elapsed, collection, bool(body.get("cached"))


def show(label: str, times: list[float]) -> None:
    if not times:
        print(f"{label}: no answer")
        return
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    print(f"{label}: {len(times)} answers, p50 {p50 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")


@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[Path]:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with tempfile.TemporaryDirectory(prefix="bench-chat-import-") as tmp_name:
        yield Path(tmp_name)


async def run(args: argparse.Namespace) -> None:
    with workdir(args.keep) as tmp:
        export = tmp / "import.jsonl"
        await asyncio.to_thread(write_export, export, args.import_events, args.export_seed)
        port = free_port()
        base = f"http://127.0.0.1:{port}"

        if not (tmp / "data").exists():
            print(f"seeding {args.seed:,} demo events through the service...", flush=True)
            started = time.perf_counter()
            proc = start_server(port, tmp, args.seed)
            try:
                await wait_ready(base, proc, seconds=3600)
                print(f"  seeded and ready in {time.perf_counter() - started:.1f} s", flush=True)
            finally:
                stop(proc)

        started = time.perf_counter()
        proc = start_server(port, tmp, 0)
        try:
            await wait_ready(base, proc, seconds=3600)
            ready = time.perf_counter() - started
            async with httpx.AsyncClient(base_url=base, timeout=600) as http:
                headers = await login(http)
                first, via, _ = await ask(http, headers, "Combien d'événements au total ?")
                answered = time.perf_counter() - started
                info = (await http.get("/api/info", headers=headers)).json()
                print(
                    f"restart on {info['counts']['audit_events']:,} events: health in {ready:.1f} s, "
                    f"first chat answer at {answered:.1f} s ({first * 1000:.0f} ms, read from {via})"
                )

                before: list[float] = []
                print("\nbefore the import:")
                for q in QUESTIONS:
                    t, via, cached = await ask(http, headers, q)
                    before.append(t)
                    print(f"  {t * 1000:7.0f} ms  {via:<28} {q}")

                async def do_import() -> tuple[dict, float]:
                    t0 = time.perf_counter()
                    with export.open("rb") as f:
                        files = {"file": ("import.jsonl", f, "application/x-ndjson")}
                        r = await http.post("/api/audit/import", files=files, headers=headers)
                    r.raise_for_status()
                    return r.json(), time.perf_counter() - t0

                print(f"\nimporting {args.import_events:,} events; meanwhile, one question at a time:")
                task = asyncio.create_task(do_import())
                await asyncio.sleep(2)  # the upload is read and the first batches are written
                during: list[float] = []
                vias: list[str] = []
                rounds = 0
                while not task.done():
                    await http.post("/api/cache/cleanup", params={"all": "true"}, headers=headers)
                    rounds += 1
                    for q in QUESTIONS:
                        if task.done():
                            break
                        t, via, cached = await ask(http, headers, q)
                        during.append(t)
                        vias.append(via)
                        print(f"  {t * 1000:7.0f} ms  {via:<28} {'(cache) ' if cached else ''}{q}")
                        await asyncio.sleep(args.pause)
                result, seconds = await task
                rate = result["inserted"] / seconds
                print(
                    f"import: {result['inserted']:,} inserted, {result['duplicates']:,} duplicates in "
                    f"{seconds:.1f} s ({rate:,.0f} events/s over HTTP, detectors after the import included)"
                )
                from_rollups = sum(v.endswith("_rollups") for v in vias)
                print(
                    f"answers during the import ({rounds} rounds): read the rollups {from_rollups} "
                    f"times of {len(vias)}"
                )
                show("before the import", before)
                show("during the import", during)
        finally:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20_000)
    parser.add_argument("--import-events", type=int, default=100_000)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between two questions")
    parser.add_argument("--keep", help="keep the store in this directory; reuse it if it is there")
    parser.add_argument("--export-seed", type=int, default=1234, help="new events for a kept store")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
