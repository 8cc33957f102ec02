"""``manage.py paper_feed FEED [FEED ...]``: run live feeds into the market-data bus.

Each named feed of ``config/environments/paper.yaml`` runs supervised in this
process (``ifns_paper.feeds.supervisor``): a crash or a lost source is logged,
reported, and the feed restarts with capped exponential backoff; SIGINT or
SIGTERM stops every feed cleanly.

* ``synthetic``: the seeded ``SyntheticMarket`` advanced to the wall clock every
  ``--interval-ms``, with a clock entry at the end of each span.
* ``replay``: a recorded canonical file re-stamped onto the wall clock
  (``ifns_paper.feeds.replay``), at ``speed`` or as fast as possible.
* ``binance_ws``: the Binance public combined stream, receive-time stamped
  (``ifns_paper.feeds.runners``; needs internet).

Every publish goes to one capped Redis Stream per feed (``ifns:md:<feed>``)
and then queues a step for each running session on the feed
(``sessions_app.dispatch.steps_for_feed``). Feed health is written through
``telemetry_app.services.feed_health_record`` every 5 s and on each status
change (and mirrored in the Redis hash ``ifns:feed:<feed>``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ifns_paper.config import ConfigError, load_config_dir
from ifns_paper.config.loader import resolve_feed_file
from ifns_paper.engine.marketdata import MarketDataError
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.instruments import spec_for
from ifns_paper.feeds.recorder import Recorder
from ifns_paper.feeds.replay import load_replay_file
from ifns_paper.feeds.runners import BinanceRunner, FeedRunner, ReplayRunner, SyntheticRunner
from ifns_paper.feeds.supervisor import Backoff, HealthSnapshot, Supervisor, run_feeds
from ifns_paper.feeds.synthetic import GlitchSpec, SyntheticMarket
from sessions_app import dispatch
from telemetry_app.services import feed_health_record

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Publish live market data for the named feeds (see config/environments/paper.yaml)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("feeds", nargs="+")
        parser.add_argument("--interval-ms", type=int, default=20,
                            help="publish period (a clock entry each time: orders resolve within it)")
        parser.add_argument("--glitches", action="store_true", help="synthetic: inject gaps, stale, crossed, outlier ticks")
        parser.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0: run until stopped)")
        parser.add_argument("--report-every-s", type=float, default=5.0, help="feed health report period")
        parser.add_argument("--backoff-s", type=float, default=0.5, help="first restart delay (doubles, capped)")
        parser.add_argument("--backoff-cap-s", type=float, default=30.0, help="longest restart delay")

    def handle(self, *args, feeds: list[str], interval_ms: int, glitches: bool, duration_s: float,
               report_every_s: float, backoff_s: float, backoff_cap_s: float, **options) -> None:
        if interval_ms < 1:
            raise CommandError("--interval-ms: must be >= 1")
        if report_every_s <= 0:
            raise CommandError("--report-every-s: must be > 0")
        if not 0 < backoff_s <= backoff_cap_s:
            raise CommandError("--backoff-s/--backoff-cap-s: need 0 < backoff-s <= backoff-cap-s")
        try:
            bundle = load_config_dir(settings.IFNS_CONFIG_DIR)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        configured = bundle.environment.environment.feeds
        client = dispatch.redis_client()
        interval_s = interval_ms / 1000
        runners: list[FeedRunner] = []
        recorders: list[Recorder] = []
        for name in dict.fromkeys(feeds):
            feed = configured.get(name)
            if feed is None:
                raise CommandError(f"unknown feed {name!r} (configured: {', '.join(sorted(configured))})")
            recorder = (Recorder(settings.IFNS_RECORDINGS_DIR, name, background=True,
                                 retention_hours=settings.IFNS_RECORDING_RETENTION_HOURS)
                        if settings.IFNS_RECORD_FEEDS else None)
            bus = FeedBus(client, name, after_publish=_steps_for_feed, recorder=recorder)
            recorders += [recorder] if recorder is not None else []
            runners.append(self._runner(name, feed, bus, interval_s=interval_s, glitches=glitches))

        self.stdout.write(f"publishing {', '.join(r.name for r in runners)} every {interval_ms} ms "
                          f"to {settings.REDIS_URL}")
        self.stdout.flush()
        backoff = Backoff(base_s=backoff_s, cap_s=backoff_cap_s)

        def supervisor(io) -> Supervisor:
            return Supervisor(runners, on_health=lambda snap: _record_health(client, snap), io=io,
                              backoff=backoff, report_every_s=report_every_s)

        try:
            run_feeds(supervisor, duration_s=duration_s)
        finally:
            for recorder in recorders:  # what the writer threads still hold goes to disk
                recorder.close()
        self.stdout.write("feed stopped")

    def _runner(self, name: str, feed, bus: FeedBus, *, interval_s: float, glitches: bool) -> FeedRunner:
        stale_s = feed.stale_after_ms / 1000
        if feed.kind == "synthetic":
            try:
                specs = {s: spec_for(s, quote_rate=feed.ticks_per_second) for s in feed.symbols}
            except ValueError as exc:
                raise CommandError(f"feed {name!r}: {exc}") from None
            glitch_spec = GlitchSpec(gap_rate=0.002, stale_rate=0.002, crossed_rate=0.002, outlier_rate=0.002,
                                     disconnect_rate=0.0005) if glitches else GlitchSpec()

            def make_market(start_ns: int) -> SyntheticMarket:
                return SyntheticMarket(specs, seed=feed.seed, start_ns=start_ns, glitches=glitch_spec)

            return SyntheticRunner(name, bus, make_market, interval_s=interval_s, stale_after_s=stale_s)
        if feed.kind == "replay":
            try:
                data = load_replay_file(resolve_feed_file(feed.file), feed.symbols)
            except (MarketDataError, OSError, ValueError) as exc:
                raise CommandError(f"feed {name!r}: file: {exc}") from None
            speed = None if feed.speed == "max" else float(feed.speed)
            return ReplayRunner(name, bus, data, speed=speed, loop=feed.loop, interval_s=interval_s,
                                stale_after_s=stale_s)
        if feed.kind == "binance_ws":
            return BinanceRunner(name, bus, url=feed.url, symbols=feed.symbols, interval_s=interval_s,
                                 stale_after_s=stale_s)
        raise CommandError(f"feed {name!r}: kind {feed.kind!r} cannot run here")


def _steps_for_feed(feed: str, rows: int) -> None:
    dispatch.steps_for_feed(feed)


def _record_health(client, snap: HealthSnapshot) -> None:
    """Store one health snapshot (telemetry) and mirror it in ``ifns:feed:<feed>``."""
    feed_health_record(
        feed=snap.feed, kind=snap.kind, status=str(snap.status),
        event_time=datetime.fromtimestamp(snap.event_time_ns / 1e9, tz=UTC),
        last_tick_age_ms=snap.last_tick_age_ms, rows_total=snap.rows_total, gaps=snap.gaps,
        restarts=snap.restarts, glitches=snap.glitches, detail=snap.detail,
    )
    mapping = {"status": str(snap.status), "reported_ns": snap.event_time_ns, "rows_total": snap.rows_total,
               "last_tick_age_ms": -1 if snap.last_tick_age_ms is None else snap.last_tick_age_ms,
               "gaps": snap.gaps, "restarts": snap.restarts,
               **{f"glitch_{kind}": n for kind, n in snap.glitches.items()}}
    client.hset(f"ifns:feed:{snap.feed}", mapping=mapping)
