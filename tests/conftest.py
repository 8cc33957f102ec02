"""Shared fixtures: a real Redis, the shipped configuration, named personas.

Personas (Healthchecks/Zulip style): ``viewer`` may read, ``operator`` may
drive sessions (``operate_papersession``), ``admin`` is a superuser.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings

from ifns_paper.localredis import ensure

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "config"

_local_redis = None

# Property tests draw new examples on every run (``make test``); CI (``HYPOTHESIS_PROFILE=ci``,
# set by .ci/run) runs a fixed set, so that a landing is reproducible. ``make fuzz`` draws many more.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config) -> None:
    """Tests talk to a real Redis: start one if nothing answers at REDIS_URL."""
    global _local_redis
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    _local_redis = ensure(url, workdir=ROOT / "data" / "redis")


# Tests that start real processes (web server, Celery workers, feeds, browsers) on Redis
# databases 11-15 and ports of their own: under pytest-xdist (``make test``) they run one after
# the other on one worker (``--dist loadgroup``), the other tests spread over every worker.
PROCESS_TEST_DIRS = ("tests/system/", "tests/browser/")
PROCESS_TEST_FILES = ("tests/api/test_client_recipe.py", "tests/sessions/test_promotions.py",
                      "tests/sessions/test_registry_file.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if (path.startswith(PROCESS_TEST_DIRS) or path in PROCESS_TEST_FILES or item.get_closest_marker("slow")
                or "served_app" in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("processes"))


def pytest_unconfigure(config) -> None:
    if _local_redis is not None:
        _local_redis.stop()


@pytest.fixture(autouse=True)
def _no_throttle_counts():
    """Throttle counts (the test cache) start empty in every test."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, settings):
    """Registry exports and other generated files go to a per-test folder."""
    settings.IFNS_DATA_DIR = tmp_path / "data"
    settings.IFNS_REGISTRY_DIR = tmp_path / "data" / "registry"
    settings.IFNS_RECORDINGS_DIR = tmp_path / "data" / "recordings"
    settings.IFNS_IMPORTS_DIR = tmp_path / "data" / "imports"
    return settings.IFNS_DATA_DIR


@pytest.fixture(autouse=True)
def _fresh_step_worker_memory():
    """What a step worker keeps between steps (engines, step times, mark writes) and a
    worker between summary refreshes is per process: each test starts as a fresh worker would."""
    from sessions_app import steps
    from sessions_app.services.summaries import inputs_forget

    yield
    inputs_forget()
    steps._ENGINES.clear()
    steps._STEP_TIMES.clear()
    steps._MARKS_WRITTEN.clear()


@pytest.fixture
def bundle():
    from ifns_paper.config import load_config_dir

    return load_config_dir(SHIPPED_CONFIG, label_root="config")


@pytest.fixture
def loaded(db, bundle, django_capture_on_commit_callbacks):
    """The shipped configuration applied to the database (registry file written)."""
    from sessions_app.services import config_apply

    with django_capture_on_commit_callbacks(execute=True):
        config_apply(bundle=bundle, actor="test-setup")
    return bundle


# Queries a signed-in request makes before a view runs: the Django session, the user, the
# user's own permissions and its groups' permissions.
AUTH_QUERIES = 4


def role_user(django_user_model, username: str, role: str | None, *, superuser: bool = False):
    """A user in one role group (``ifns_paper/roles.py``), the groups set up first."""
    from sessions_app.services.roles import roles_setup, user_roles_set

    roles_setup()
    if superuser:
        user = django_user_model.objects.create_superuser(username, f"{username}@example.invalid", f"pw-{username}")
    else:
        user = django_user_model.objects.create_user(username, password=f"pw-{username}")
    if role is not None:
        user_roles_set(username=username, roles=[role])
    return user


@pytest.fixture
def viewer(db, django_user_model):
    return role_user(django_user_model, "victor_viewer", "viewer")


@pytest.fixture
def operator(db, django_user_model):
    return role_user(django_user_model, "olga_operator", "operator")


@pytest.fixture
def approver(db, django_user_model):
    return role_user(django_user_model, "april_approver", "approver")


@pytest.fixture
def admin_user(db, django_user_model):
    return role_user(django_user_model, "ada_admin", "admin", superuser=True)


def signed_in(user):
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def client(viewer):
    """Django's test client signed in as a viewer: what reading the pages and the API needs.
    Tests of who may do what make their own clients (tests/api/test_roles.py)."""
    return signed_in(viewer)


@pytest.fixture
def viewer_token(viewer) -> str:
    """An API token of the viewer (``Authorization: Token``, or ``?token=`` on a WebSocket)."""
    from sessions_app.services.tokens import token_create

    return token_create(username=viewer.username, name="tests", actor="tests")[1]


@pytest.fixture
def reader(viewer):
    """The viewer's client, where a test's ``client`` is something else (a Redis client)."""
    return signed_in(viewer)


def redis_url_with_db(db_index: int) -> str:
    """The test Redis, another logical database (keeps subprocess tests apart)."""
    base = settings.REDIS_URL.rsplit("/", 1)[0] if settings.REDIS_URL.count("/") >= 3 else settings.REDIS_URL
    return f"{base}/{db_index}"


def clone_sessions(n: int, *, template: str = "research_fx_momentum_v13") -> None:
    """Add ``n`` more sessions (with their model links) shaped like ``template`` (query-count tests)."""
    from sessions_app.models import PaperSession, SessionModel

    for i in range(n):
        session = PaperSession.objects.get(session_id=template)
        links = list(session.model_links.all())
        session.pk = None
        session._state.adding = True
        session.session_id = f"extra_session_{i}"
        session.save()
        for link in links:
            SessionModel.objects.create(session=session, entry_id=link.entry_id, weight=link.weight)
