"""``make run``: set up and start the whole system as one supervised group.

1. Make sure Redis answers at ``REDIS_URL`` (start a local one if not).
2. ``manage.py ifns_setup``: migrate, load the shipped config, demo admin.
   Demo sessions (tagged ``demo``) are started.
3. ``honcho start``: ASGI web server, Celery worker, Celery beat and the
   feeds (``Procfile``), plus one solo step worker per step shard
   (``IFNS_STEP_SHARDS``, default 2: ``steps0`` consumes queue ``steps.0``, ...).
   Ctrl-C (SIGINT) or SIGTERM stops all of them, then the Redis we started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ifns_paper.localredis import RedisUnavailable, ensure

ROOT = Path(__file__).resolve().parent.parent


def step_worker_lines(shards: int) -> list[str]:
    """One solo Celery worker per step queue: it keeps its sessions' engines in memory. At
    WARNING: steps run dozens of times a second, and INFO logs two lines for each."""
    return [f"steps{n}: celery -A ifns_paper.celery worker --pool solo --queues steps.{n} --loglevel WARNING "
            f"--hostname steps{n}@%h" for n in range(shards)]


def procfile_text(env: dict) -> str:
    shards = env.get("IFNS_STEP_SHARDS", "2")
    if not shards.isdigit() or int(shards) < 1:
        raise SystemExit(f"IFNS_STEP_SHARDS: expected a whole number >= 1, got {shards!r}")
    base = (ROOT / "Procfile").read_text().rstrip("\n").splitlines()
    return "\n".join([*base, *step_worker_lines(int(shards))]) + "\n"


def main() -> int:
    env = os.environ.copy()
    env.setdefault("DJANGO_SETTINGS_MODULE", "ifns_paper.settings.local")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    port = env.get("PORT", "8000")
    if not port.isdigit():
        print(f"PORT: expected a number, got {port!r}", file=sys.stderr)
        return 2
    env["IFNS_WEB_PORT"] = port
    data_dir = Path(env.get("IFNS_DATA_DIR", ROOT / "data"))
    env["IFNS_DATA_DIR"] = str(data_dir)
    # The Procfile names `python`, `celery`: run the ones of this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    try:
        redis = ensure(env["REDIS_URL"], workdir=data_dir / "redis")
    except RedisUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if redis:
        print(f"Started a local Redis at {env['REDIS_URL']} (stopped on exit)", flush=True)

    honcho = None
    try:
        setup = subprocess.run([sys.executable, str(ROOT / "manage.py"), "ifns_setup", "--start-demo"],
                               env=env, cwd=ROOT)
        if setup.returncode != 0:
            return setup.returncode
        print(f"\n  IFNS Paper (PAPER: simulated capital) → open http://127.0.0.1:{port}/\n", flush=True)
        procfile = data_dir / "Procfile.run"
        procfile.parent.mkdir(parents=True, exist_ok=True)
        procfile.write_text(procfile_text(env))
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(procfile), "-d", str(ROOT)],
            env=env, cwd=ROOT,
        )

        asked_to_stop = []

        def forward(signum, _frame):
            # honcho stops every process on SIGINT or SIGTERM.
            asked_to_stop.append(signum)
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = honcho.wait()
        # stopped as asked (Ctrl-C): every process ends on the SIGTERM honcho sends, which is
        # not a failure of `make run`; a process that died on its own keeps honcho's code
        return 0 if asked_to_stop else code
    finally:
        if honcho is not None and honcho.poll() is None:
            honcho.terminate()
            honcho.wait()
        if redis:
            redis.stop()


if __name__ == "__main__":
    raise SystemExit(main())
