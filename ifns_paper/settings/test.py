"""Test settings: same stack as local (real Redis, SQLite or PostgreSQL)."""

import os

os.environ.setdefault("DEBUG", "1")

from ifns_paper.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Each test starts with empty throttle counts (tests/conftest.py clears it): a cache of its own.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
