"""Event-loop stalls while 20 clients log in at once.

Starts the app in this process (uvicorn on a loopback port, embedded store, fresh data dir), creates
the users, then runs the clients in a child process (so their own work does not count as the app's
stall) while a ticker task in the app's loop measures how late it wakes up. Prints the largest stall
in ms (target < 50 ms), logins per second, and the time of a failed login for an unknown user and
for a wrong password (they should be about the same).

    .venv/bin/python bench/loop_lag.py [--clients 20] [--rounds 5]
"""

import argparse
import asyncio
import gc
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
TICK = 0.005


async def run_clients(port: int, clients: int, rounds: int) -> dict:
    """Child process: `clients` concurrent logins per round, then failed-login timings."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=clients)
    # Warm-up on other connections (first-request imports and caches), then wait for "go".
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        await asyncio.gather(
            *(
                client.post("/api/auth/login", data={"username": f"bench{i:02d}", "password": PASSWORD})
                for i in range(clients)
            )
        )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def login(username: str, password: str = PASSWORD) -> tuple[int, float]:
            started = time.perf_counter()
            r = await client.post("/api/auth/login", data={"username": username, "password": password})
            return r.status_code, time.perf_counter() - started

        latencies: list[float] = []
        started = time.perf_counter()
        for _ in range(rounds):
            results = await asyncio.gather(*(login(f"bench{i:02d}") for i in range(clients)))
            assert all(code == 200 for code, _ in results), results
            latencies += [t for _, t in results]
        elapsed = time.perf_counter() - started

        wrong, unknown = [], []
        for i in range(10):
            wrong.append((await login(f"bench{i:02d}", "wrong-password"))[1])
            unknown.append((await login(f"ghost{i:02d}", "wrong-password"))[1])
    latencies.sort()
    return {
        "logins": len(latencies),
        "seconds": elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "wrong_ms": statistics.median(wrong) * 1000,
        "unknown_ms": statistics.median(unknown) * 1000,
    }


class GcPauses:
    """The longest garbage collection while active: a full one holds the GIL, whatever thread runs it."""

    def __init__(self) -> None:
        self.longest = (0.0, -1)
        self._started: dict[int, float] = {}

    def _callback(self, phase: str, info: dict) -> None:
        now, ident = time.perf_counter(), threading.get_ident()
        if phase == "start":
            self._started[ident] = now
        elif ident in self._started:
            self.longest = max(self.longest, (now - self._started.pop(ident), info["generation"]))

    def __enter__(self) -> "GcPauses":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)


class Ticker:
    """Sleeps TICK again and again; the lateness of each wake-up is how long the loop was blocked.

    It also notes the CPU time the loop's thread used in each interval: a stall spent running code
    on the loop shows as CPU, one where the thread waited for a core (or the GIL) does not.
    """

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self.cpu: list[float] = []
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            started, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(TICK)
            self.stalls.append(time.perf_counter() - started - TICK)
            self.cpu.append(time.thread_time() - cpu)

    @property
    def max_stall(self) -> float:
        return max(self.stalls, default=0.0)

    @property
    def p99(self) -> float:
        return sorted(self.stalls)[int(len(self.stalls) * 0.99)] if self.stalls else 0.0

    @property
    def max_cpu(self) -> float:
        return max(self.cpu, default=0.0)

    def __enter__(self) -> "Ticker":
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc) -> None:
        self.task.cancel()


async def run_control() -> dict:
    """Child process: a bare ticker with no work at all, for the host's own scheduling noise."""
    with Ticker() as ticker:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    return {"max_ms": ticker.max_stall * 1000, "p99_ms": ticker.p99 * 1000}


async def spawn(*args: str) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    await child.stdout.readline()  # "ready"
    return child


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="bench-loop-lag-"))
    os.environ.pop("MONGODB_URI", None)
    os.environ.update(
        SECRET_KEY=secrets.token_urlsafe(48),
        DEBUG="false",
        SEED_DEMO_DATA="false",
        EMBEDDED_DATA_DIR=str(data),
        SQLITE_DB_PATH=str(data / "cache.db"),
        LOG_LEVEL="WARNING",
        LOGIN_MAX_ATTEMPTS="1000000",  # the failed-login timings must not hit the throttle
        ADMIN_USERNAME="",
        ADMIN_PASSWORD="",
    )
    sys.path.insert(0, str(ROOT))
    import uvicorn

    import auth
    from database import free_port
    from main import app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise SystemExit("the app did not start")
        await asyncio.sleep(0.05)
    try:
        store = app.state.store
        await asyncio.gather(
            *(
                auth.create_user(
                    store, username=f"bench{i:02d}", email=f"b{i}@example.com", password=PASSWORD
                )
                for i in range(args.clients)
            )
        )
        with Ticker() as idle:
            await asyncio.sleep(1)
        # Spawned and warmed up before the ticker starts (forking this big process and first-request
        # imports are not a login's cost); the children then wait for a line on their stdin.
        clients = await spawn(
            "--client-port", str(port), "--clients", str(args.clients), "--rounds", str(args.rounds)
        )
        control = await spawn("--control")
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        with Ticker() as busy, GcPauses() as gc_pauses:
            out, _ = await clients.communicate(b"go\n")
        control_out, _ = await control.communicate(b"stop\n")
        if clients.returncode or control.returncode:
            raise SystemExit("a bench child process failed")
        figures = json.loads(out)
        noise = json.loads(control_out)
    finally:
        server.should_exit = True
        await serving
        shutil.rmtree(data, ignore_errors=True)

    print(f"{args.clients} clients x {args.rounds} rounds = {figures['logins']} logins")
    print(f"max event-loop stall during logins: {busy.max_stall * 1000:.1f} ms (target < 50 ms)")
    print(f"  p99 stall {busy.p99 * 1000:.1f} ms; loop's own CPU in an interval {busy.max_cpu * 1000:.1f} ms")
    print(f"max event-loop stall when idle:     {idle.max_stall * 1000:.1f} ms")
    print(
        f"host noise, a bare ticker in another process meanwhile: max {noise['max_ms']:.1f} ms, "
        f"p99 {noise['p99_ms']:.1f} ms"
    )
    print(
        f"longest garbage collection during logins: {gc_pauses.longest[0] * 1000:.1f} ms "
        f"(generation {gc_pauses.longest[1]}; {len(gc.get_objects()):,} tracked objects"
        f"{', gc.freeze() after start-up' if args.gc_freeze else ''})"
    )
    print(f"logins per second: {figures['logins'] / figures['seconds']:.1f}")
    print(f"login latency under load: p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms")
    print(
        f"failed login, median of 10: wrong password {figures['wrong_ms']:.0f} ms, "
        f"unknown user {figures['unknown_ms']:.0f} ms"
    )
    print(
        f"cpus: {os.cpu_count()}, hash workers: {auth._HASH_POOL._max_workers}, load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once started")
    parser.add_argument("--control", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.control:
        print(json.dumps(asyncio.run(run_control())))
    elif arguments.client_port:
        # The clients stand for other machines: they must not take the app's CPU from it.
        os.nice(10)
        print(
            json.dumps(asyncio.run(run_clients(arguments.client_port, arguments.clients, arguments.rounds)))
        )
    else:
        asyncio.run(main(arguments))
