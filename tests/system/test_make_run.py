"""`make run` smoke and soak test: the supervised group starts, serves `/`, answers a
Celery ping, trades on paper, runs for 90 seconds with no session faulting and every
running session still producing telemetry, logs no error and no traceback, and stops
cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from tests.conftest import ROOT, redis_url_with_db

SOAK_S = 90  # the system runs at least this long after start (a 90-second soak; `make run` by hand for longer)
FAULT_CHECK_EVERY_S = 10
FRESH_TELEMETRY_S = 30
DEMO_SESSIONS = ("research_fx_momentum_v13", "research_crypto_trend")
SCHEDULED_SESSION = "gatecheck_fx_momentum_v12"  # its start time is in the past: the scheduler starts it

# Error log lines of the group (each prefixed by honcho with "HH:MM:SS name.1 | "):
ERROR_LINE = re.compile(
    r"\[\d{4}-\d\d-\d\d [\d:,.]+: (?:ERROR|CRITICAL)/"  # Celery: [2026-... 12:00:00,123: ERROR/MainProcess]
    r"|\d{4}-\d\d-\d\d [\d:,.]+ (?:ERROR|CRITICAL) "  # Django/Python logging: 2026-... ERROR name: msg
    r"|(?:^|\| ?)(?:ERROR|CRITICAL):"  # uvicorn: ERROR:    Exception in ASGI application
)
PIP_NOISE = re.compile(r"WARNING: Location 'file:///opt/pypi")


def _is_error_line(line: str) -> bool:
    return bool(ERROR_LINE.search(line)) and not PIP_NOISE.search(line)


@pytest.mark.parametrize(
    ("line", "is_error"),
    [
        ("16:49:00 worker.1 | [2026-11-29 16:49:00,571: ERROR/MainProcess] Task x raised", True),
        ("16:49:00 steps0.1 | [2026-11-29 16:49:00,571: ERROR/ForkPoolWorker-1] boom", True),
        ("16:49:00 beat.1   | [2026-11-29 16:49:00,571: CRITICAL/MainProcess] beat died", True),
        ("16:49:00 feed.1   | 2026-11-29 16:49:00,571 ERROR ifns_paper.feeds: feed crashed", True),
        ("16:49:00 web.1    | ERROR:    Exception in ASGI application", True),
        ("ERROR:    Exception in ASGI application", True),
        ("16:49:00 worker.1 | [2026-11-29 16:49:00,571: INFO/MainProcess] Task x succeeded", False),
        ("16:49:00 worker.1 | [2026-11-29 16:49:00,571: WARNING/MainProcess] slow", False),
        ("16:49:00 web.1    | INFO:     Uvicorn running on http://127.0.0.1:8000", False),
        ("WARNING: Location 'file:///opt/pypi/simple/x/' is ignored: it is neither a file nor a directory.", False),
        ("16:46:20 steps0.1 |   _warn_or_raise_security_error(egid, euid, gid, uid,", False),
    ],
)
def test_the_error_line_detector(line, is_error):
    """The soak test's detector of error log lines can fire (and leaves other lines alone)."""
    assert _is_error_line(line) is is_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_HEADERS: dict[str, str] = {}  # the API token, once the demo users exist


def _get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=_HEADERS)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status, response.read().decode()


def _get_json(url: str):
    status, body = _get(url)
    assert status == 200, (url, status, body[:500])
    return json.loads(body)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _faulted(api: str) -> list[dict]:
    return [{k: s.get(k) for k in ("session_id", "status", "last_fault", "last_fault_at")}
            for s in _get_json(f"{api}/sessions/") if s["status"] == "faulted"]


def _newest_event(api: str, session_id: str, last_event_seq: int) -> dict | None:
    """The session's newest event: page from a little before ``last_event_seq`` to the end."""
    after, newest = max(0, last_event_seq - 50), None
    while True:
        page = _get_json(f"{api}/sessions/{session_id}/events/?after={after}&limit=1000")
        if not page["events"]:
            return newest
        newest = page["events"][-1]
        after = page["next_after"]


def _with_context(lines: list[str], hits: list[int], around: int = 3) -> str:
    blocks = []
    for i in hits:
        lo, hi = max(0, i - around), min(len(lines), i + around + 1)
        blocks.append("\n".join(f"{'>>' if j == i else '  '} {lines[j]}" for j in range(lo, hi)))
    return "\n---\n".join(blocks)


@pytest.mark.slow
def test_make_run_serves_trades_soaks_and_stops_cleanly(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/api/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env |= {
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "IFNS_DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url_with_db(11),  # the test Redis, a database of its own
    }
    # The group's output goes to a file, not a pipe: three minutes of logs would fill a pipe
    # that is only read at the end and block the processes writing to it.
    log_path = tmp_path / "make_run.log"
    log = log_path.open("w")
    # What `make run` runs once the virtualenv is in place.
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ifns_paper.devserver"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log.close()  # the child holds its own copy

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        deadline = time.monotonic() + 90
        body = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"make run exited early:\n{output()}"
            try:
                status, body = _get(f"{base}/")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"`/` did not answer 200 within 90 s:\n{output()[-4000:]}")
        assert "PAPER" in body and "Sign in" in body  # the pages need a signed-in user
        # the API needs a signed-in user: a token of the demo viewer, as a script would use
        made = subprocess.run([sys.executable, "manage.py", "paper_token", "create", "viewer", "--name", "soak test"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stdout + made.stderr
        anonymous = urllib.request.Request(f"{api}/sessions/")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=5)  # noqa: S310 - loopback only
        assert refused.value.code == 401
        _HEADERS["Authorization"] = f"Token {made.stdout.splitlines()[1]}"
        listed = {s["session_id"]: s["lane"] for s in _get_json(f"{api}/sessions/")}
        assert {"research_fx_momentum_v13": "paper_research", "gatecheck_fx_momentum_v12": "paper_gatecheck"}.items() \
            <= listed.items()
        assert not _faulted(api)
        # a script follows a demo session's events over the WebSocket, with the token
        from itertools import islice

        from ifns_paper.client import PaperApi, follow_session

        script = PaperApi(base, made.stdout.splitlines()[1])
        followed = list(islice(follow_session(script, "research_fx_momentum_v13", idle_timeout_s=60), 5))
        assert [e["sequence"] for e in followed] == list(range(1, 6))  # from the first, none missed

        ping = None
        while time.monotonic() < deadline:
            ping = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "ifns_paper.celery", "inspect", "ping", "--timeout", "2"],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )
            if ping.returncode == 0 and "pong" in ping.stdout:
                break
            time.sleep(1)
        assert ping is not None and "pong" in ping.stdout, ping.stdout + ping.stderr

        # The demo sessions trade on paper within a minute: fills show up in the telemetry API.
        filled = []
        trade_deadline = time.monotonic() + 60
        while time.monotonic() < trade_deadline and not filled:
            filled = _get_json(f"{api}/sessions/research_fx_momentum_v13/events/?type=order_filled")["events"]
            time.sleep(1)
        assert filled, "no paper fill within a minute of start"
        assert filled[0]["env"] == "paper" and filled[0]["payload"]["quantity"] > 0

        # Soak: the group keeps running until SOAK_S after start; no session faults meanwhile.
        checks = 0
        while True:
            assert proc.poll() is None, f"make run exited during the soak:\n{output()[-4000:]}"
            faulted = _faulted(api)
            checks += 1
            elapsed = time.monotonic() - started
            assert not faulted, f"faulted session(s) {elapsed:.0f} s after start: {faulted}"
            if elapsed >= SOAK_S:
                break
            time.sleep(min(FAULT_CHECK_EVERY_S, SOAK_S - elapsed))
        assert checks >= 5

        # Every running session is alive at the end of the soak: fresh telemetry and health.
        sessions = {s["session_id"]: s for s in _get_json(f"{api}/sessions/")}
        running = sorted(sid for sid, s in sessions.items() if s["status"] == "running")
        expected = set(DEMO_SESSIONS)
        start_at = sessions[SCHEDULED_SESSION]["start_at"]
        if start_at and datetime.fromisoformat(start_at) <= datetime.now(UTC):
            expected.add(SCHEDULED_SESSION)
        assert expected <= set(running), {sid: s["status"] for sid, s in sessions.items()}
        problems = []
        for sid in running:
            detail = _get_json(f"{api}/sessions/{sid}/")
            newest = _newest_event(api, sid, detail["last_event_seq"])
            now = datetime.now(UTC)
            if newest is None or newest["recorded_at"] is None:
                problems.append(f"{sid}: no telemetry at all (last_event_seq={detail['last_event_seq']})")
            else:
                age = (now - datetime.fromisoformat(newest["recorded_at"])).total_seconds()
                if age > FRESH_TELEMETRY_S:
                    problems.append(f"{sid}: newest event #{newest['sequence']} ({newest['type']}) "
                                    f"recorded {age:.1f} s ago")
            health = detail["health"] or {}
            if not (health.get("steps_per_min") or 0) > 0:
                problems.append(f"{sid}: steps_per_min={health.get('steps_per_min')!r} health={health}")
            if health.get("last_fault") is not None:
                problems.append(f"{sid}: last_fault={health['last_fault']!r}")
            if (health.get("kill_switch") or {}).get("state") != "active":
                problems.append(f"{sid}: kill_switch={health.get('kill_switch')!r}")
        assert not problems, "\n".join(problems)

        # The evidence (issue 9): by now each demo session has a summary line, the summary,
        # incidents, series and telemetry links of the registry answer with JSON, paper_report
        # prints the summary, and the lane aggregates and the funnel are served.
        registry = tmp_path / "data" / "registry"
        summaries = registry / "paper_summary.ndjson"
        deadline = time.monotonic() + 120  # summaries are written once a minute by beat
        while True:
            lines = [json.loads(line) for line in summaries.read_text().splitlines()] if summaries.exists() else []
            if set(DEMO_SESSIONS) <= {s["session_id"] for s in lines}:
                break
            assert time.monotonic() < deadline, f"no summary line of every demo session: {lines}"
            time.sleep(3)
        entries = {e["session_id"]: e for e in json.loads((registry / "paper_sessions.json").read_text())["sessions"]}
        for sid in DEMO_SESSIONS:
            links = entries[sid]["links"]
            for name in ("summary", "incidents", "series", "telemetry"):
                path = "/" + links[name].split("://", 1)[-1].split("/", 1)[1]
                assert _get_json(base + path) is not None, (sid, name)
            assert _get_json(base + "/" + links["summary"].split("://", 1)[-1].split("/", 1)[1])["session_id"] == sid
        report = subprocess.run([sys.executable, "manage.py", "paper_report", DEMO_SESSIONS[0]], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        assert report.returncode == 0 and "P&L" in report.stdout and " bp" in report.stdout, report.stdout + report.stderr
        assert _get_json(f"{api}/lanes/paper_research/summary/")["lane"] == "paper_research"
        assert _get_json(f"{api}/funnel/")

        # Triangulation and governance (issue 10), from the command line as the README says: a
        # shadow backtest of a demo session over the feed's recording makes its decisions; an
        # SEL evaluation; a promotion asked by admin, refused to admin, approved by approver
        # with an override, leaving a scheduled gatecheck session with its provenance.
        def cli(*args: str) -> str:
            out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                                 text=True)
            assert out.returncode == 0, f"manage.py {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
            return out.stdout

        sid = DEMO_SESSIONS[0]
        # make run gave each demo session a rolling shadow backtest; the beat rolled it and
        # stored its comparison (every minute) while the soak ran
        # (a roll every minute: on a slow machine the first ones may cover less than a minute of
        # market, so wait for one that covers whole minutes, up to two more rolls)
        wait_until = time.monotonic() + 130
        while True:
            rolling = _get_json(f"{api}/sessions/{sid}/comparison/")
            covered = rolling["curves"]["periods"] > 0 and rolling["decisions"]["paper"] > 0
            if covered or time.monotonic() > wait_until:
                break
            time.sleep(5)
        shadow = _get_json(f"{api}/backtests/{rolling['backtest_id']}/")
        assert rolling["rolling"] is True and "-rolling-" in rolling["backtest_id"], rolling
        assert covered, {"periods": rolling["curves"]["periods"], "decisions": rolling["decisions"],
                         "computed_at": rolling.get("computed_at"), "until_ns": rolling["until_ns"],
                         "rolls": shadow["params"].get("rolls"), "status": shadow["status"], "error": shadow["error"]}
        made = cli("paper_backtest", "shadow", sid, "--latency", "route")
        assert "replayed (route latency)" in made
        one_off = made.split()[1].rstrip(":")
        comparison = json.loads(cli("paper_compare", sid, "--backtest", one_off, "--json"))
        assert comparison["decisions"]["share"] == 1.0 and comparison["decisions"]["paper"] > 0, comparison
        assert "SEL evaluation" in cli("paper_sel", "evaluate", sid)
        assert "is pending" in cli("paper_promotion", "request", sid, "--to-lane", "paper_gatecheck", "--as", "admin",
                                   "--reason", "soak test")
        refused = subprocess.run([sys.executable, "manage.py", "paper_promotion", "approve", "1", "--as", "admin",
                                  "--reason", "mine"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert refused.returncode != 0 and "four eyes" in refused.stderr
        assert "is applied" in cli("paper_promotion", "approve", "1", "--as", "approver", "--reason", "ok",
                                   "--override", "soak test: short evidence")
        clone = _get_json(f"{api}/sessions/{sid}-gatecheck/")
        assert clone["status"] == "scheduled" and clone["lane"] == "paper_gatecheck"

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=60) == 0, "stopped as asked: make run does not report a failure"
        text = output()
        assert "open http://127.0.0.1:" in text
        for name in ("web.1", "worker.1", "beat.1", "feed.1", "steps0.1", "steps1.1"):
            assert f"{name} stopped" in text, text[-2000:]
        assert not _port_open(port), "web server still listening after Ctrl-C"

        # Nothing went wrong along the way: no traceback, no error log line.
        lines = text.splitlines()
        tracebacks = [i for i, line in enumerate(lines) if "Traceback" in line]
        errors = [i for i, line in enumerate(lines) if _is_error_line(line)]
        assert not tracebacks, (f"{len(tracebacks)} traceback(s) in the output of make run:\n"
                                f"{_with_context(lines, tracebacks, around=25)}")
        assert not errors, (f"{len(errors)} error line(s) in the output of make run:\n"
                            f"{_with_context(lines, errors)}")
    finally:
        if proc.poll() is None:
            # honcho runs each process in a session of its own: a kill of this group would
            # leave them running (steps, feed, web...). SIGTERM makes it stop them all.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
