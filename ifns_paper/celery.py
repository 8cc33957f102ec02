"""The Celery app: Redis broker, late acks, one task prefetched at a time.

Settings are read from Django settings under the ``CELERY_`` namespace
(see ``ifns_paper/settings/base.py``).

Database connections follow Django's own rules in workers too: before and
after each task, ``close_old_connections`` drops a connection that errored,
outlived ``CONN_MAX_AGE`` or fails its health check, and keeps the others.
(Celery's Django fix-up would otherwise close every connection around every
task — ``CELERY_DB_REUSE_MAX`` turns that off — and a step task running
dozens of times a second would pay a new PostgreSQL connection, and the
server a new backend process, each time.)
"""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ifns_paper.settings.local")

app = Celery("ifns_paper")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_db_connections(**_kwargs) -> None:
    from django.db import close_old_connections

    close_old_connections()
