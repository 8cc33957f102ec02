"""Workers keep their database connection between tasks (Celery's Django fix-up would close
it around every task: a step task dozens of times a second would then pay a new connection,
and PostgreSQL a new backend process, each time)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="SQLite's in-memory test database ignores close(); CI runs this on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_celery_django_fixup_leaves_the_connection_open_around_tasks():
    from celery.fixups.django import DjangoWorkerFixup

    from ifns_paper.celery import app

    fixup = DjangoWorkerFixup(app)
    connection.ensure_connection()
    raw = connection.connection
    task = SimpleNamespace(request=SimpleNamespace(is_eager=False))
    for _ in range(100):
        fixup.on_task_prerun(sender=task)
        fixup.on_task_postrun(sender=task)
    assert connection.connection is raw  # the same connection, never closed
