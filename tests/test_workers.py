"""Several workers and replicas behave as one service: one embedded store, one login throttle."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from database import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("admin", "admin-password-123")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "OPENAI_API_KEY", "ORACLE_DSN")}
    env.update(
        SECRET_KEY="workers-secret-key-0123456789-abcdefghijklmnop",
        SEED_DEMO_DATA="false",
        EMBEDDED_DATA_DIR=str(tmp / "data"),
        SQLITE_DB_PATH=str(tmp / "cache.db"),
        ADMIN_USERNAME=ADMIN[0],
        ADMIN_PASSWORD=ADMIN[1],
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def _serve(tmp: Path, port: int, *args: str, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT), "main:app", "--port", str(port), *args]
    log = (tmp / f"uvicorn-{port}.log").open("w")
    return subprocess.Popen(cmd, cwd=tmp, env=_env(tmp, **env), stdout=log, stderr=subprocess.STDOUT)


def _wait(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the server did not start")


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def _wrong_logins(ports: list[int], n: int) -> list[int]:
    codes = []
    for i in range(n):
        port = ports[i % len(ports)]
        # A new connection each time, so that the workers behind one port share the attempts.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = c.post("/api/auth/login", data={"username": ADMIN[0], "password": f"wrong-{i}"})
        codes.append(r.status_code)
    return codes


@pytest.mark.slow
def test_two_workers_share_one_embedded_store_and_one_throttle(tmp_path: Path) -> None:
    port = free_port()
    server = _serve(tmp_path, port, "--workers", "2", REGISTER_MAX_PER_HOUR="3")
    try:
        _wait(port, server)
        assert _wrong_logins([port], 8) == [401] * 5 + [429] * 3
        codes = []
        for i in range(4):
            user = {"username": f"worker_user_{i}", "email": f"w{i}@example.com", "password": "password-123"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
                codes.append(c.post("/api/auth/register", json=user).status_code)
        assert codes == [201, 201, 201, 429]
        # Only one store serves the data folder.
        stores = subprocess.run(["pgrep", "-f", f"storage-path {tmp_path}"], capture_output=True, text=True)
        assert len(stores.stdout.split()) == 1, stores.stdout
    finally:
        _stop(server)


@pytest.mark.slow
def test_two_replicas_on_one_store_share_the_throttle(tmp_path: Path, mongo_uri: str) -> None:
    ports = [free_port(), free_port()]
    db = {"MONGODB_URI": mongo_uri, "MONGODB_DB": f"sio_replicas_{os.getpid()}"}
    replicas = [_serve(tmp_path, p, **db) for p in ports]
    try:
        for p, proc in zip(ports, replicas, strict=True):
            _wait(p, proc)
        assert _wrong_logins(ports, 8) == [401] * 5 + [429] * 3
    finally:
        _stop(*replicas)
