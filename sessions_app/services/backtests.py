"""Backtests beside the paper sessions (spec §7): a **shadow backtest** runs a session's own
definition through the engine's strategy replay, as fast as possible, over exactly the
market data the session read in real time — its feed's recording (``feeds.recorder``)
from its start to the last stream entry it consumed — with the route's latencies or with
none. The result is registered as a ``Backtest`` and summarised by the same metric
functions as the session (``env: "backtest"``), so the two compare key by key.

What the session read: the entries of its feed's stream published after its start (entry
ids from the start's millisecond on, as the steps read them), up to the one its checkpoint
has consumed, without those published while it was paused (the steps skip them on resume).
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ifns_paper import marketbus
from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from ifns_paper.feeds.recorder import segments, stream_items
from ifns_paper.paper_replay import replay_engine
from sessions_app.engines import build_engine
from sessions_app.models import Backtest, ChangeLogEntry, PaperSession
from sessions_app.services.changelog import changelog_record

log = logging.getLogger(__name__)

LATENCY_MODES = ("zero", "route")


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


def shadow_backtest(*, session_id: str, actor: str, latency: str = "zero") -> Backtest:
    """Run and register the shadow backtest of ``session_id`` (see the module docstring).

    Raises ``NotFound`` for an unknown session, ``Conflict`` when the session never ran or
    read nothing yet, ``ApplicationError`` for a bad latency mode or when its feed has no
    recording covering what it read. A run that fails midway is registered ``failed`` with
    its error (and re-raised); its partial files are removed."""
    if latency not in LATENCY_MODES:
        raise ApplicationError(f"latency: expected one of {', '.join(LATENCY_MODES)}, got {latency!r}")
    session = (PaperSession.objects.select_related("lane", "strategy", "execution_policy__route", "checkpoint")
               .filter(session_id=session_id).first())
    if session is None:
        raise NotFound(f"no session {session_id!r}")
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
    out_rel = Path("backtests") / backtest_id
    out = Path(settings.IFNS_DATA_DIR) / out_rel
    params = {"latency": latency, "feed": session.feed, "symbols": list(session.symbols), "after_entry": after,
              "until_entry": until, "skipped": skip, "session_started_at": session.started_at.isoformat(),
              "recordings": str(root / session.feed)}
    with transaction.atomic():
        row = Backtest.objects.create(backtest_id=backtest_id, kind=Backtest.Kind.SHADOW, session=session,
                                      strategy=session.strategy, params=params, out_dir=str(out_rel),
                                      created_by=actor)
        changelog_record(actor=actor, action="backtest_shadow", target_type="paper_session", target_id=session_id,
                         reason=f"shadow backtest ({latency} latency)", after={"backtest_id": backtest_id, **params})
    engine = build_engine(session, zero_latency=latency == "zero")
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


def backtest_files(backtest: Backtest) -> Path:
    return Path(settings.IFNS_DATA_DIR) / backtest.out_dir


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
