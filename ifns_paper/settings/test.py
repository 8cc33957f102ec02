"""Test settings: same stack as local (real Redis, SQLite or PostgreSQL)."""

import os

os.environ.setdefault("DEBUG", "1")


def _redis_url_of_this_worker(url: str, worker: str) -> str:
    """``make test`` runs pytest-xdist workers (gw0, gw1, ...): each gets a Redis database of
    its own, the base one plus its number, so that streams, channel groups and locks of two
    tests running at once never meet. Databases 11-15 belong to the tests that start real
    processes (``tests.conftest.redis_url_with_db``), which run one at a time."""
    if not (worker.startswith("gw") and worker[2:].isdigit()) or worker == "gw0":
        return url
    scheme, _, rest = url.partition("://")
    host, _, db = rest.partition("/")
    if scheme not in ("redis", "rediss") or (db and not db.isdigit()):
        return url  # a socket or an unusual URL: leave it (run the suite with one worker then)
    index = int(db or 0) + int(worker[2:])
    if index > 10:
        raise RuntimeError(f"REDIS_URL {url!r}: worker {worker} would use database {index}, "
                           "but 11-15 are the process tests'; use a lower database or fewer workers")
    return f"{scheme}://{host}/{index}"


os.environ["REDIS_URL"] = _redis_url_of_this_worker(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                                                    os.environ.get("PYTEST_XDIST_WORKER", ""))

from ifns_paper.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Each test starts with empty throttle counts (tests/conftest.py clears it): a cache of its own.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
