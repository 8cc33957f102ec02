"""Small, strict readers for settings that come from the environment.

Each helper fails loudly (``ImproperlyConfigured``) on a value it cannot
interpret, naming the variable and what it expected: a typo in ``DEBUG`` or
``DATABASE_URL`` must stop the process at start-up, not surface as odd
behaviour later.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"{name}: required environment variable is not set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}: expected a boolean (1/0, true/false, yes/no, on/off), got {raw!r}"
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}: expected a finite number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be >= {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(
            f"{name}: expected a comma-separated list without empty items, got {raw!r}"
        )
    return items


def env_path(name: str, default: Path, *, base: Path) -> Path:
    """A directory path; relative values are taken relative to ``base``."""
    raw = os.environ.get(name)
    path = Path(raw) if raw else default
    if not path.is_absolute():
        path = base / path
    if path.exists() and not path.is_dir():
        raise ImproperlyConfigured(f"{name}: {str(path)!r} exists and is not a directory")
    return path.resolve()


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    value = env_str(name, default)
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest:
        raise ImproperlyConfigured(
            f"{name}: expected a URL starting with one of {', '.join(s + '://' for s in schemes)}, "
            f"got {value!r}"
        )
    return value


def database_config(url: str | None, *, sqlite_default: Path) -> dict:
    """Django DATABASES['default'] from ``DATABASE_URL`` (or the embedded SQLite file).

    SQLite gets WAL journaling and a busy timeout so the web server, Celery
    worker and beat can share one file; writers take the lock up front
    (IMMEDIATE) instead of failing mid-transaction.
    """
    import environ

    if not url:
        url = f"sqlite:///{sqlite_default}"
    scheme = url.partition("://")[0]
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql", "psql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL: unsupported scheme {scheme!r}; use sqlite:///PATH or postgres://..."
        )
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL: cannot parse {url!r}: {exc}") from exc
    if config["ENGINE"] == "django.db.backends.sqlite3":
        if not config.get("NAME") or config["NAME"] == ":memory:":
            raise ImproperlyConfigured("DATABASE_URL: SQLite needs a file path (sqlite:///PATH)")
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    elif os.environ.get("IFNS_DB_POOL_MAX"):
        # The ASGI web server (the Procfile's web line sets this): Django runs each request's sync
        # code in a thread of its own, so per-thread persistent connections would pile up
        # until PostgreSQL refuses more; a pool shares a few (Django's psycopg pool support).
        config["CONN_MAX_AGE"] = 0
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": int(os.environ["IFNS_DB_POOL_MAX"]), "timeout": 10}
    else:
        config.setdefault("CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    return config
