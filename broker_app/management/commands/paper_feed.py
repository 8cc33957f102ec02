"""``manage.py paper_feed FEED [FEED ...]``: run synthetic live feeds into the market-data bus.

Every ``--interval-ms`` it advances each feed's seeded synthetic market to
the wall clock, publishes the new quotes and trades (pipelined) to one
capped Redis Stream per symbol, records feed health in Redis
(``ifns:feed:<name>``: last publish time, rows, glitches by kind) and queues
a step for every running session on the feed. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ifns_paper import marketbus
from ifns_paper.config import ConfigError, load_config_dir
from ifns_paper.engine.replay import interleave
from ifns_paper.feeds.instruments import spec_for
from ifns_paper.feeds.synthetic import GlitchSpec, SyntheticMarket
from sessions_app import scheduler


class Command(BaseCommand):
    help = "Publish live-like synthetic market data for the named feeds (see config/environments/paper.yaml)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("feeds", nargs="+")
        parser.add_argument("--interval-ms", type=int, default=50)
        parser.add_argument("--glitches", action="store_true", help="inject gaps, stale, crossed, outlier ticks")
        parser.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0: run until stopped)")

    def handle(self, *args, feeds: list[str], interval_ms: int, glitches: bool, duration_s: float, **options) -> None:
        try:
            bundle = load_config_dir(settings.IFNS_CONFIG_DIR)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        configured = bundle.environment.environment.feeds
        now = time.time_ns()
        markets = {}
        for name in feeds:
            feed = configured.get(name)
            if feed is None:
                raise CommandError(f"unknown feed {name!r} (configured: {', '.join(sorted(configured))})")
            if feed.kind != "synthetic":
                raise CommandError(f"feed {name!r} is {feed.kind}; this command runs synthetic feeds")
            try:
                specs = {s: spec_for(s, quote_rate=feed.ticks_per_second) for s in feed.symbols}
            except ValueError as exc:
                raise CommandError(f"feed {name!r}: {exc}") from None
            glitch_spec = GlitchSpec(gap_rate=0.002, stale_rate=0.002, crossed_rate=0.002, outlier_rate=0.002,
                                     disconnect_rate=0.0005) if glitches else GlitchSpec()
            markets[name] = SyntheticMarket(specs, seed=feed.seed, start_ns=now, glitches=glitch_spec)
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
        client = scheduler.redis_client()
        self.stdout.write(f"publishing {', '.join(feeds)} every {interval_ms} ms to {settings.REDIS_URL}")
        deadline = time.monotonic() + duration_s if duration_s else None
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            tick = time.monotonic()
            for name, market in markets.items():
                quotes, trades, glitch_records = market.advance(time.time_ns())
                batches = list(interleave([*quotes, *trades]))
                rows = marketbus.publish(client, name, batches) if batches else 0
                health = {"last_publish_ns": time.time_ns(), "last_rows": rows}
                pipe = client.pipeline(transaction=False)
                pipe.hset(f"ifns:feed:{name}", mapping=health)
                for g in glitch_records:
                    pipe.hincrby(f"ifns:feed:{name}", f"glitch_{g.kind}", 1)
                pipe.execute()
                if rows:
                    scheduler.steps_for_feed(name)
            time.sleep(max(0.0, interval_ms / 1000 - (time.monotonic() - tick)))
        self.stdout.write("feed stopped")
