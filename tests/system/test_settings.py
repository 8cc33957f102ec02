"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from ifns_paper import env
from tests.conftest import ROOT

PROD_ENV = {
    "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.production",
    "SECRET_KEY": "k" * 20 + "-Zq8#v2L!pX0r@T5wN9&mB3^cY7*uE1%jH6",
    "ALLOWED_HOSTS": "paper.example.com",
    "DEBUG": "0",
}


@pytest.mark.parametrize(
    ("helper", "raw", "message"),
    [
        (lambda: env.env_bool("X_FLAG", False), "maybe", "X_FLAG: expected a boolean"),
        (lambda: env.env_int("X_NUM", 1), "ten", "X_NUM: expected an integer, got 'ten'"),
        (lambda: env.env_int("X_NUM", 1, minimum=1), "0", "X_NUM: must be >= 1, got 0"),
        (lambda: env.env_list("X_LIST", []), "a,,b", "X_LIST: expected a comma-separated list"),
        (lambda: env.env_url("X_URL", "redis://x", schemes=("redis",)), "http://x", "X_URL: expected a URL"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, helper, raw, message):
    name = message.split(":")[0]
    monkeypatch.setenv(name, raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_good_values_parse(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    monkeypatch.setenv("X_LIST", "a, b")
    assert env.env_bool("X_FLAG", False) is True
    assert env.env_list("X_LIST", []) == ["a", "b"]


def test_sqlite_default_uses_wal_and_a_busy_timeout(tmp_path):
    config = env.database_config("", sqlite_default=tmp_path / "x.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] == 20


def test_postgres_url_is_parsed():
    config = env.database_config("postgres://u@127.0.0.1:5432/ifns", sqlite_default=ROOT / "x")
    assert (config["ENGINE"], config["NAME"], config["HOST"]) == (
        "django.db.backends.postgresql", "ifns", "127.0.0.1")


def test_unsupported_database_url_is_refused():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL: unsupported scheme 'mysql'"):
        env.database_config("mysql://x/y", sqlite_default=ROOT / "x")


def _manage(*args, extra_env: dict) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environ | extra_env,
                          capture_output=True, text=True)


def test_production_settings_pass_check_deploy_with_zero_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", extra_env=PROD_ENV)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_settings_refuse_a_missing_secret_key():
    result = _manage("check", extra_env={k: v for k, v in PROD_ENV.items() if k != "SECRET_KEY"})
    assert result.returncode != 0
    assert "SECRET_KEY: must be set when DEBUG is off" in result.stderr


def test_a_bad_debug_value_stops_start_up():
    result = _manage("check", extra_env={"DEBUG": "perhaps"})
    assert result.returncode != 0
    assert "DEBUG: expected a boolean" in result.stderr


def test_the_web_server_shares_a_small_postgresql_pool(monkeypatch):
    """ASGI runs each request's sync code in a thread of its own: per-thread persistent
    connections would pile up past PostgreSQL's limit under load (seen in bench.api_bench)."""
    monkeypatch.setenv("IFNS_DB_POOL_MAX", "8")
    config = env.database_config("postgres://u@127.0.0.1:5432/ifns", sqlite_default=ROOT / "x")
    assert config["CONN_MAX_AGE"] == 0 and config["OPTIONS"]["pool"]["max_size"] == 8
    monkeypatch.delenv("IFNS_DB_POOL_MAX")
    assert "pool" not in env.database_config("postgres://u@127.0.0.1:5432/ifns",
                                             sqlite_default=ROOT / "x").get("OPTIONS", {})
