"""Many clients on the Oracle metrics stream: every client gets its events, memory comes back.

Starts the app in one uvicorn process (embedded store, empty trail, Oracle not configured: the
stream still reports the pool, counts and latencies), logs in as admin, opens N concurrent
`GET /api/oracle/metrics/stream` connections for D seconds, then closes them. Prints the events each
client received against the expected number, and the server's resident memory before, at its peak,
and after the clients left. Asserts nothing on time.

    .venv/bin/python bench/sse.py [--clients 200] [--seconds 30] [--interval 1] [--rounds 3]
"""

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(port: int, interval: float, tmp: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "SEED_DEMO_DATA": "false",
        "EMBEDDED_DATA_DIR": str(tmp / "data"),
        "SQLITE_DB_PATH": str(tmp / "cache.db"),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": "bench-admin-password",
        "ORACLE_METRICS_INTERVAL_SECONDS": str(interval),
        "LOG_LEVEL": "WARNING",
    }
    for name in ("MONGODB_URI", "ORACLE_DSN", "ORACLE_HOST", "OPENAI_API_KEY"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen([*cmd, "--log-level", "warning"], cwd=ROOT, env=env)


async def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    """Until /api/health answers (seeding a large trail happens before it does)."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with code {proc.returncode}")
            try:
                if (await http.get("/api/health")).status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


class Client:
    def __init__(self) -> None:
        self.events = 0
        self.pings = 0
        self.first_event_s: float | None = None
        self.error: str | None = None


async def listen(http: httpx.AsyncClient, client: Client, stop: asyncio.Event, started: float) -> None:
    try:
        async with http.stream("GET", "/api/oracle/metrics/stream") as response:
            if response.status_code != 200:
                client.error = f"HTTP {response.status_code}"
                return
            lines = response.aiter_lines()
            while not stop.is_set():
                line = await lines.__anext__()
                if line.startswith("event: metrics"):
                    client.events += 1
                    if client.first_event_s is None:
                        client.first_event_s = time.monotonic() - started
                elif line.startswith(":"):
                    client.pings += 1
    except (httpx.HTTPError, StopAsyncIteration) as exc:
        client.error = type(exc).__name__


async def run_clients(base: str, token: str, n: int, seconds: float) -> list[Client]:
    clients = [Client() for _ in range(n)]
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(10.0, read=None)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=timeout) as http:
        started = time.monotonic()
        tasks = [asyncio.create_task(listen(http, c, stop, started)) for c in clients]
        await asyncio.sleep(seconds)
        stop.set()
        for task in tasks:  # leave: the connections close
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return clients


async def streams_open(base: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        return (await http.get("/api/oracle/metrics")).json()["streams"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0, help="ORACLE_METRICS_INTERVAL_SECONDS")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of clients, to tell a leak")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as tmp:
        proc = start_server(port, args.interval, Path(tmp))
        try:
            await wait_ready(base, proc)
            async with httpx.AsyncClient(base_url=base) as http:
                r = await http.post(
                    "/api/auth/login", data={"username": "admin", "password": "bench-admin-password"}
                )
                token = r.json()["access_token"]
            # warm-up: first requests load code paths and fill caches that stay for the process' life
            await run_clients(base, token, 20, 3 * args.interval)
            await asyncio.sleep(2)
            rss_start = rss_mb(proc.pid)
            print(
                f"{args.clients} clients x {args.seconds:.0f} s, interval {args.interval:g} s "
                f"(expected ~{args.seconds / args.interval:.0f} events each), {args.rounds} round(s); "
                f"server RSS at start {rss_start:.1f} MB"
            )
            for number in range(1, args.rounds + 1):
                await one_round(number, base, token, proc, args, rss_start)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def one_round(number, base, token, proc, args, rss_start) -> None:
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb(proc.pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    run = asyncio.create_task(run_clients(base, token, args.clients, args.seconds))
    await asyncio.sleep(args.seconds / 2)
    open_mid_run = await streams_open(base, token)
    clients = await run
    sampler.cancel()

    left_at = time.monotonic()
    # polling over HTTP: the server's count is in another process
    while (still_open := await streams_open(base, token)) and time.monotonic() - left_at < 10:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    closed_after_s = time.monotonic() - left_at
    await asyncio.sleep(10)
    rss_after = rss_mb(proc.pid)

    counts = [c.events for c in clients]
    errors = [c.error for c in clients if c.error]
    firsts = [c.first_event_s for c in clients if c.first_event_s is not None]
    print(
        f"round {number}: events per client min {min(counts)}, median {statistics.median(counts):.0f}, "
        f"max {max(counts)}; total {sum(counts)}; clients with no event {sum(1 for c in counts if c == 0)}; "
        f"errors {len(errors)}; first event within {max(firsts):.2f} s"
    )
    print(
        f"  streams open mid-run {open_mid_run}, after the clients left {still_open} "
        f"(within {closed_after_s:.1f} s); RSS peak {max(samples):.1f} MB, 10 s after leaving "
        f"{rss_after:.1f} MB ({rss_after - rss_start:+.1f} MB from start)"
    )


if __name__ == "__main__":
    asyncio.run(main())
