"""Feed configuration: replay feeds validated against their file, reported as file:line: field: message."""

from __future__ import annotations

import shutil

import pytest

from ifns_paper.config import ConfigError, load_config_dir
from ifns_paper.config.loader import REPO_ROOT, resolve_feed_file
from tests.conftest import SHIPPED_CONFIG

ENV = "environments/paper.yaml"
SHIPPED_REPLAY = """    replay_eurusd:
      kind: replay           # a recorded file played as if live, re-stamped onto the wall clock
      file: data/market/eurusd_quotes_2020-01-01.csv   # relative to the repository, or absolute
      speed: 1 """


def _with_replay(tmp_path, body: str, line_of: str):
    """The shipped directory with the replay feed's first lines replaced by ``body``, and
    the line where ``line_of`` first appears."""
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    env = root / ENV
    text = env.read_text()
    assert SHIPPED_REPLAY in text, "fixture drifted: the shipped replay feed changed"
    text = text.replace(SHIPPED_REPLAY, body, 1)
    env.write_text(text)
    return root, next(i for i, row in enumerate(text.splitlines(), 1) if line_of in row)


def _problems(root) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config_dir(root, label_root="config")
    return [str(p) for p in err.value.problems]


def test_shipped_replay_feed_resolves_to_a_real_file_and_its_symbols(bundle):
    feed = bundle.environment.environment.feeds["replay_eurusd"]
    assert (feed.kind, feed.speed, feed.loop, feed.symbols) == ("replay", 1.0, True, None)
    assert resolve_feed_file(feed.file) == REPO_ROOT / "data/market/eurusd_quotes_2020-01-01.csv"
    assert resolve_feed_file(str(REPO_ROOT / feed.file)) == REPO_ROOT / feed.file  # absolute as is


@pytest.mark.parametrize("body, expect, line_of", [
    ("    replay_eurusd:\n      kind: replay\n      file: data/market/nope.csv\n      speed: 1 ",
     "environment.feeds.replay_eurusd.file: file not found: data/market/nope.csv", "nope.csv"),
    ("    replay_eurusd:\n      kind: replay\n      file: data/market/eurusd_quotes_2020-01-01.csv\n      speed: fast ",
     "environment.feeds.replay_eurusd.speed: must be a positive number or 'max', not 'fast'", "speed: fast"),
    ("    replay_eurusd:\n      kind: replay\n      file: data/market/eurusd_quotes_2020-01-01.csv\n      speed: 0 ",
     "environment.feeds.replay_eurusd.speed: must be a positive number or 'max', not 0", "speed: 0"),
    ("    replay_eurusd:\n      kind: replay\n      file: data/market/eurusd_quotes_2020-01-01.csv\n"
     "      symbols: [EURUSD, GBPUSD]\n      speed: 1 ",
     "environment.feeds.replay_eurusd.symbols[1]: data/market/eurusd_quotes_2020-01-01.csv has no rows of GBPUSD",
     "GBPUSD]"),
    ("    replay_eurusd:\n      kind: replay\n      path: data/market/eurusd_quotes_2020-01-01.csv\n      speed: 1 ",
     "environment.feeds.replay_eurusd.path: unknown field", "path: data/market"),
    ("    replay_eurusd:\n      kind: replay\n      file: data/market/eurusd_quotes_2020-01-01.csv\n      speed: -2 ",
     "environment.feeds.replay_eurusd.speed: must be a positive number or 'max', not -2", "speed: -2"),
], ids=["missing-file", "speed-word", "speed-zero", "symbol-not-in-file", "unknown-field", "speed-negative"])
def test_bad_replay_feed_names_file_line_and_field(tmp_path, body, expect, line_of):
    root, line = _with_replay(tmp_path, body, line_of)
    problems = _problems(root)
    matching = [p for p in problems if expect in p]
    assert matching, f"expected {expect!r} in {problems}"
    assert matching[0].startswith(f"config/{ENV}:{line}: "), matching


def test_replay_file_with_bad_data_is_refused_with_its_own_line(tmp_path):
    bad = tmp_path / "eurusd_quotes_bad.csv"
    bad.write_text("timestamp,bid,ask\n2020-01-01T00:00:00Z,1.1,1.2\n2020-01-01T00:00:01Z,abc,1.2\n")
    root, line = _with_replay(tmp_path, f"    replay_eurusd:\n      kind: replay\n      file: {bad}\n      speed: 1 ",
                              f"file: {bad}")
    problems = _problems(root)
    matching = [p for p in problems if "environment.feeds.replay_eurusd.file: cannot replay" in p]
    assert matching and matching[0].startswith(f"config/{ENV}:{line}: "), problems
    assert f"{bad}:line 3" in matching[0] and "bid" in matching[0]


def test_binance_stale_after_must_be_positive(tmp_path):
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    env = root / ENV
    env.write_text(env.read_text().replace("stale_after_ms: 5000", "stale_after_ms: 0", 1))
    problems = _problems(root)
    assert any("environment.feeds.binance_spot.stale_after_ms: Input should be greater than or equal to 1" in p
               for p in problems), problems


def test_session_on_a_replay_feed_is_checked_against_the_file_symbols(tmp_path):
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    session = root / "paper_trading/session_research_crypto_trend.yaml"
    text = session.read_text()
    assert "feed: synthetic_crypto" in text
    session.write_text(text.replace("feed: synthetic_crypto", "feed: replay_eurusd", 1))
    problems = _problems(root)
    assert any("feed 'replay_eurusd' does not carry BTCUSDT (it carries: EURUSD)" in p for p in problems), problems
