"""Backtests beside the paper sessions (spec §7): a **shadow backtest** runs a session's own
definition through the engine's strategy replay, as fast as possible, over exactly the
market data the session read in real time — its feed's recording (``feeds.recorder``)
from its start to the last stream entry it consumed — with the route's latencies or with
none. The result is registered as a ``Backtest`` and summarised by the same metric
functions as the session (``env: "backtest"``), so the two compare key by key.

What the session read: the entries of its feed's stream published after its start (entry
ids from the start's millisecond on, as the steps read them), up to the one its checkpoint
has consumed, without those published while it was paused (the steps skip them on resume).

A **rolling** shadow backtest follows a live session: each roll (every minute, beat task
``shadows_roll``) restores the engine it pickled last time, replays the recording from the
entry it stopped at to the one the session has consumed since (or to the end of the
recording, whose writer runs a little behind the stream), appends to its files, pickles
the engine again and updates its summary; the comparison with the session is recomputed
after each roll. Once the session has ended and the recording has caught up with its last
entry (or ``SETTLE_S`` have passed), the backtest is completed. A roll that fails marks it
``failed`` with the error: it is not retried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import LockError

from ifns_paper import marketbus
from ifns_paper.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed
from ifns_paper.feeds.recorder import HOUR_NS, entry_key, segments, stream_items
from ifns_paper.paper_replay import replay_engine
from sessions_app.checkpoints import engine_dump, engine_load
from sessions_app.engines import build_engine
from sessions_app.models import Backtest, ChangeLogEntry, PaperSession
from sessions_app.services.changelog import changelog_record

log = logging.getLogger(__name__)

LATENCY_MODES = ("zero", "route")
RECORD_FILES = ("events.ndjson", "fills.ndjson", "series.ndjson", "minutes.ndjson")
SETTLE_S = 120.0  # after its session ended, how long a rolling shadow waits for the recording to catch up


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def paused_stretches(session: PaperSession) -> list[tuple[str, str]]:
    """Stream entry id ranges [pause, resume) the session did not read, from its change log."""
    moves = (ChangeLogEntry.objects.filter(target_type="paper_session", target_id=session.session_id,
                                           action__in=["session_pause", "session_resume"])
             .order_by("created_at", "id").values_list("action", "created_at"))
    out, paused = [], None
    for action, at in moves:
        if action == "session_pause":
            paused = at
        elif paused is not None:
            out.append((f"{_ms(paused)}-0", f"{_ms(at)}-0"))
            paused = None
    if paused is not None:
        out.append((f"{_ms(paused)}-0", "18446744073709551615-0"))
    return out


def _session(session_id: str) -> PaperSession:
    session = (PaperSession.objects.select_related("lane", "strategy", "execution_policy__route", "checkpoint")
               .filter(session_id=session_id).first())
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    return session


def shadow_backtest(*, session_id: str, actor: str, latency: str = "zero", rolling: bool = False) -> Backtest:
    """Run and register the shadow backtest of ``session_id`` (see the module docstring);
    with ``rolling``, register one that follows the session while it runs (its first roll
    runs now when the session has read data).

    Raises ``NotFound`` for an unknown session, ``Conflict`` when the session never ran or
    read nothing yet (a rolling one: when the session has ended, or already has a rolling
    shadow), ``ApplicationError`` for a bad latency mode or when its feed has no recording
    covering what it read. A run that fails midway is registered ``failed`` with its error
    (and re-raised); its partial files are removed."""
    if rolling:
        if latency not in LATENCY_MODES:
            raise ApplicationError(f"latency: expected one of {', '.join(LATENCY_MODES)}, got {latency!r}")
        return _rolling_register(_session(session_id), actor=actor, latency=latency)
    row = shadow_register(session_id=session_id, actor=actor, latency=latency)
    return shadow_run(backtest_id=row.backtest_id)


def shadow_register(*, session_id: str, actor: str, latency: str = "zero") -> Backtest:
    """Check and register a one-shot shadow backtest (``running``), to be run by
    ``shadow_run`` — now (``shadow_backtest``) or by a worker (the API). Raises as
    ``shadow_backtest`` does; nothing is registered then."""
    if latency not in LATENCY_MODES:
        raise ApplicationError(f"latency: expected one of {', '.join(LATENCY_MODES)}, got {latency!r}")
    session = _session(session_id)
    if session.started_at is None:
        raise Conflict(f"{session_id}: never started, so there is no live window to shadow")
    checkpoint = getattr(session, "checkpoint", None)
    key = marketbus.stream_key(session.feed)
    until = (checkpoint.offsets or {}).get(key) if checkpoint is not None else None
    if until is None:
        raise Conflict(f"{session_id}: has not read any market data yet")
    root = Path(settings.IFNS_RECORDINGS_DIR)
    if not segments(root, session.feed):
        raise ApplicationError(f"{session_id}: feed {session.feed!r} has no recording under {root / session.feed} "
                               "(IFNS_RECORD_FEEDS=0, or recorded on another machine)")
    after = f"{_ms(session.started_at) - 1}-18446744073709551615"  # from the start's millisecond on
    skip = paused_stretches(session)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    backtest_id = f"shadow-{session_id}-{latency}-{stamp}"[:120]
    params = {"latency": latency, "feed": session.feed, "symbols": list(session.symbols), "after_entry": after,
              "until_entry": until, "skipped": skip, "session_started_at": session.started_at.isoformat(),
              "recordings": str(root / session.feed)}
    with transaction.atomic():
        row = Backtest.objects.create(backtest_id=backtest_id, kind=Backtest.Kind.SHADOW, session=session,
                                      strategy=session.strategy, params=params,
                                      out_dir=str(Path("backtests") / backtest_id), created_by=actor)
        changelog_record(actor=actor, action="backtest_shadow", target_type="paper_session", target_id=session_id,
                         reason=f"shadow backtest ({latency} latency)", after={"backtest_id": backtest_id, **params})
    return row


def shadow_run(*, backtest_id: str) -> Backtest:
    """Run a registered one-shot shadow backtest (``shadow_register``) to completion: its
    row ends ``completed`` with its summary, or ``failed`` with the error (re-raised)."""
    row = Backtest.objects.select_related("session").get(backtest_id=backtest_id)
    if row.status != Backtest.Status.RUNNING or row.params.get("rolling"):
        return row
    session = _session(row.session.session_id)
    session_id, params = session.session_id, dict(row.params)
    after, until, skip = params["after_entry"], params["until_entry"], [tuple(x) for x in params["skipped"]]
    root, out = Path(settings.IFNS_RECORDINGS_DIR), backtest_files(row)
    engine = build_engine(session, zero_latency=params["latency"] == "zero")
    items = stream_items(root, session.feed, symbols=set(session.symbols), after_id=after, until_id=until,
                         skip=skip)
    try:
        result = replay_engine(engine, items, out=out, session_id=session_id, symbols=list(session.symbols),
                               benchmark=session.benchmark, env="backtest", summary_id=backtest_id)
        summary = json.loads((out / "paper_summary.json").read_text())
    except Exception as exc:
        shutil.rmtree(out, ignore_errors=True)
        Backtest.objects.filter(pk=row.pk).update(status=Backtest.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                  finished_at=timezone.now())
        if isinstance(exc, ValueError):  # e.g. a recording without entry ids: say so, no traceback
            raise ApplicationError(f"{session_id}: shadow backtest {backtest_id} failed: {exc}") from None
        raise
    if result["counts"]["quotes"] == 0:
        shutil.rmtree(out, ignore_errors=True)
        message = (f"the recording of {session.feed!r} has none of {session_id}'s data between entries {after} "
                   f"and {until} (recorded elsewhere, or pruned: IFNS_RECORDING_RETENTION_HOURS)")
        Backtest.objects.filter(pk=row.pk).update(status=Backtest.Status.FAILED, error=message,
                                                  finished_at=timezone.now())
        raise ApplicationError(message)
    params |= {"quotes": result["counts"]["quotes"], "trades": result["counts"]["trades"],
               "last_ts": result["last_ts"], "fills_hash": result["fills_hash"]}
    Backtest.objects.filter(pk=row.pk).update(status=Backtest.Status.COMPLETED, summary=summary, params=params,
                                              finished_at=datetime.now(UTC))
    row.refresh_from_db()
    return row


def _rolling_register(session: PaperSession, *, actor: str, latency: str) -> Backtest:
    session_id = session.session_id
    if session.ended_at is not None:
        raise Conflict(f"{session_id}: has ended ({session.status}); a rolling shadow follows a live session "
                       f"(paper_backtest shadow {session_id} without --rolling runs one over its whole window)")
    if not settings.IFNS_RECORD_FEEDS:
        raise ApplicationError("IFNS_RECORD_FEEDS is off: the feeds record nothing a shadow backtest could replay")
    if _rolling(session).exists():
        raise Conflict(f"{session_id}: a rolling shadow backtest follows it already ({_rolling(session).first()})")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    backtest_id = f"shadow-{session_id}-{latency}-rolling-{stamp}"[:120]
    params = {"latency": latency, "feed": session.feed, "symbols": list(session.symbols), "rolling": True,
              "rolls": 0, "recordings": str(Path(settings.IFNS_RECORDINGS_DIR) / session.feed)}
    with transaction.atomic():
        Backtest.objects.create(backtest_id=backtest_id, kind=Backtest.Kind.SHADOW, session=session,
                                strategy=session.strategy, params=params,
                                out_dir=str(Path("backtests") / backtest_id), created_by=actor)
        changelog_record(actor=actor, action="backtest_shadow", target_type="paper_session", target_id=session_id,
                         reason=f"rolling shadow backtest ({latency} latency): follows the session while it runs",
                         after={"backtest_id": backtest_id, **params})
    return shadow_roll(backtest_id=backtest_id)


def _rolling(session: PaperSession):
    return Backtest.objects.filter(session=session, kind=Backtest.Kind.SHADOW, status=Backtest.Status.RUNNING,
                                   params__rolling=True)


def shadow_roll(*, backtest_id: str) -> Backtest:
    """One roll of a rolling shadow backtest (see the module docstring); returns its row.
    A roll already under way elsewhere (another worker, the command line) makes this one a
    no-op. Raises what made the roll fail, after marking the backtest ``failed``."""
    from sessions_app.dispatch import redis_client

    lock = redis_client().lock(f"ifns:shadow-roll:{backtest_id}", timeout=900, blocking=False)
    if not lock.acquire():
        return Backtest.objects.get(backtest_id=backtest_id)
    try:
        return _roll(Backtest.objects.get(backtest_id=backtest_id))
    finally:
        with contextlib.suppress(LockError):  # expired midway: nothing to release
            lock.release()


def _roll(row: Backtest) -> Backtest:
    if row.status != Backtest.Status.RUNNING or not row.params.get("rolling"):
        return row
    session = _session(row.session.session_id)
    params = dict(row.params)
    checkpoint = getattr(session, "checkpoint", None)
    until = (checkpoint.offsets or {}).get(marketbus.stream_key(session.feed)) if checkpoint is not None else None
    ended = session.ended_at is not None
    if session.started_at is None or until is None:
        if ended:
            return _roll_failed(row, Conflict(f"{session.session_id} ended without reading any market data"))
        return row  # nothing read yet: the next roll
    state = params.get("state")
    after = state["until_entry"] if state else f"{_ms(session.started_at) - 1}-18446744073709551615"
    out = backtest_files(row)
    progress: dict = {}
    if state:  # what a roll that died midway appended or half wrote goes
        for name, size in state["sizes"].items():
            with (out / name).open("r+b") as f:
                f.truncate(size)
        for leftover in out.glob("engine-*.tmp"):
            leftover.unlink()
    if not state or entry_key(after) < entry_key(until):
        try:
            if state:
                engine = engine_load((out / state["engine"]).read_bytes())
                last_ts = engine.driver.stats.last_ts
                from_hour = (last_ts // HOUR_NS - 1) * HOUR_NS if last_ts else None
            else:
                shutil.rmtree(out, ignore_errors=True)
                engine = build_engine(session, zero_latency=params["latency"] == "zero")
                from_hour = None
            items = stream_items(Path(settings.IFNS_RECORDINGS_DIR), session.feed, symbols=set(session.symbols),
                                 after_id=after, until_id=until, skip=paused_stretches(session),
                                 from_hour_ns=from_hour, progress=progress)
            result = replay_engine(engine, items, out=out, session_id=session.session_id,
                                   symbols=list(session.symbols), benchmark=session.benchmark, env="backtest",
                                   summary_id=row.backtest_id, resume=bool(state))
            n = (state or {}).get("n", 0) + 1
            name = f"engine-{n}.pickle.z"
            (out / (name + ".tmp")).write_bytes(engine_dump(engine))
            (out / (name + ".tmp")).replace(out / name)
            summary = json.loads((out / "paper_summary.json").read_text())
        except Exception as exc:
            _roll_failed(row, exc)
            raise
        reached = progress.get("last_id") or after
        params |= {"state": {"n": n, "engine": name, "until_entry": reached,
                             "sizes": {f: (out / f).stat().st_size for f in RECORD_FILES}},
                   "until_entry": reached, "rolls": params.get("rolls", 0) + 1, "rolled_at": timezone.now().isoformat(),
                   "quotes": result["counts"]["quotes"], "trades": result["counts"]["trades"],
                   "last_ts": result["last_ts"], "fills_hash": result["fills_hash"]}
        row.params, row.summary = params, summary
        Backtest.objects.filter(pk=row.pk).update(params=params, summary=summary)
        if state:
            (out / state["engine"]).unlink(missing_ok=True)
    if not ended:
        return row
    reached = params.get("until_entry", after)
    settled = (timezone.now() - session.ended_at).total_seconds() > SETTLE_S
    if entry_key(reached) < entry_key(until) and not settled:
        return row  # the recording has not caught up with the session's last entry yet
    if not params.get("quotes"):
        return _roll_failed(row, ApplicationError(
            f"the recording of {session.feed!r} has none of {session.session_id}'s data (recorded elsewhere, or "
            "pruned: IFNS_RECORDING_RETENTION_HOURS)"))
    if entry_key(reached) < entry_key(until):
        params["missing_tail"] = {"after_entry": reached, "until_entry": until,
                                  "why": f"not in the recording {SETTLE_S:.0f} s after the session ended"}
    params["rolling"] = False
    Backtest.objects.filter(pk=row.pk).update(params=params, status=Backtest.Status.COMPLETED,
                                              finished_at=timezone.now())
    row.refresh_from_db()
    return row


def _roll_failed(row: Backtest, exc: Exception) -> Backtest:
    params = {**row.params, "rolling": False}
    Backtest.objects.filter(pk=row.pk).update(status=Backtest.Status.FAILED, params=params,
                                              error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
    log.warning("rolling shadow backtest %s failed, it stops following %s: %s: %s", row.backtest_id,
                row.session.session_id, type(exc).__name__, exc, exc_info=not isinstance(exc, ApplicationError))
    row.refresh_from_db()
    return row


def shadows_roll(*, session_id: str | None = None) -> list[Backtest]:
    """Roll every rolling shadow backtest (of ``session_id`` only, when given); each one's
    failure stays its own. Returns the rows rolled."""
    qs = Backtest.objects.filter(kind=Backtest.Kind.SHADOW, status=Backtest.Status.RUNNING, params__rolling=True)
    if session_id is not None:
        qs = qs.filter(session__session_id=session_id)
    rolled = []
    for backtest_id in qs.values_list("backtest_id", flat=True):
        try:
            rolled.append(shadow_roll(backtest_id=backtest_id))
        except Exception:  # noqa: BLE001 - marked failed (and logged) by the roll; the others go on
            continue
    return rolled


def backtest_files(backtest: Backtest) -> Path:
    return Path(settings.IFNS_DATA_DIR) / backtest.out_dir


def imports_folder(name: str) -> Path:
    """The results folder ``name`` under ``IFNS_IMPORTS_DIR`` (what automation may import:
    nothing outside it). ``ValidationFailed`` naming ``folder`` otherwise."""
    root = Path(settings.IFNS_IMPORTS_DIR).resolve()
    folder = (root / name).resolve()
    if root not in folder.parents or not folder.is_dir():
        raise ValidationFailed(f"folder: no results folder {name!r} under the imports directory",
                               {"folder": ["not a folder under IFNS_IMPORTS_DIR"]})
    return folder


def results_import(*, folder: Path | str, actor: str, live: bool = False) -> Backtest:
    """Register a results folder in the canonical format (``ifns_paper.results_format``) as an
    imported backtest (Stage 04) or, with ``live``, an imported live run (Stage 07): validated
    first — every problem as ``file:line: message``, nothing written — then its files are kept
    under ``data/backtests/<id>/`` (with the series, fills and decisions the comparison reads)
    and its summary is computed by the same functions as a session's."""
    from ifns_paper.results_format import ResultsError, read_results, summarize_results
    from sessions_app.models import RegistryEntry

    try:
        results = read_results(folder)
    except ResultsError as exc:
        raise ApplicationError(f"{folder}: cannot import:\n" + "\n".join(exc.problems),
                               extra={"problems": exc.problems}) from None
    meta = results.meta
    registry_id, _, version = meta["strategy"].partition("@")
    strategy = RegistryEntry.objects.filter(registry_id=registry_id, version=version).first()
    if strategy is None:
        raise NotFound(f"summary.json: strategy: no registry entry {meta['strategy']!r}")
    session = None
    if meta.get("session_id"):
        session = PaperSession.objects.filter(session_id=meta["session_id"]).first()
        if session is None:
            raise NotFound(f"summary.json: session_id: no session {meta['session_id']!r}")
    if Backtest.objects.filter(backtest_id=meta["id"]).exists():
        raise Conflict(f"summary.json: id: a backtest {meta['id']!r} is registered already")
    env = "live" if live else "backtest"
    summary = summarize_results(results, env=env)
    out_rel = Path("backtests") / meta["id"]
    out = Path(settings.IFNS_DATA_DIR) / out_rel
    shutil.rmtree(out, ignore_errors=True)  # no backtest has this id: whatever is there is a leftover
    try:
        out.mkdir(parents=True)
        for name in ("summary.json", "equity.csv", "fills.csv", "decisions.ndjson"):
            if (Path(folder) / name).is_file():
                shutil.copy2(Path(folder) / name, out / f"source_{name}")
        (out / "series.ndjson").write_text("".join(json.dumps({"ts": p["ts_ns"], "equity": p["equity"]}) + "\n"
                                                   for p in results.equity))
        (out / "fills.ndjson").write_text("".join(json.dumps(f) + "\n" for f in results.fills))
        (out / "events.ndjson").write_text("".join(json.dumps({"type": "dra_decision", "ts": d["ts"], "payload": d})
                                                   + "\n" for d in results.decisions))
        (out / "paper_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        with transaction.atomic():
            row = Backtest.objects.create(
                backtest_id=meta["id"], kind=Backtest.Kind.LIVE if live else Backtest.Kind.IMPORTED, session=session,
                strategy=strategy, status=Backtest.Status.COMPLETED, summary=summary, out_dir=str(out_rel),
                created_by=actor, finished_at=timezone.now(),
                params={"source": str(Path(folder).resolve()), "last_ts": results.equity[-1]["ts_ns"],
                        "latency": None, "fills": len(results.fills), "equity_points": len(results.equity),
                        "decisions": len(results.decisions)})
            changelog_record(actor=actor, action="live_import" if live else "backtest_import", target_type="backtest",
                             target_id=meta["id"], reason=f"imported from {folder}",
                             after={"strategy": meta["strategy"], "session": meta.get("session_id")})
    except Exception:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return row


def backtest_equity(backtest_id: str) -> tuple[list[int], list[float]] | None:
    """A completed backtest's equity series (times in ns, equity), for ``benchmark:
    backtest:<id>``; None when there is no such completed backtest."""
    row = Backtest.objects.filter(backtest_id=backtest_id, status=Backtest.Status.COMPLETED).first()
    path = backtest_files(row) / "series.ndjson" if row is not None else None
    if path is None or not path.is_file():
        return None
    points = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [int(p["ts"]) for p in points], [float(p["equity"]) for p in points]

