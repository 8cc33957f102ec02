"""The Celery app: Redis broker, late acks, one task prefetched at a time.

Settings are read from Django settings under the ``CELERY_`` namespace
(see ``ifns_paper/settings/base.py``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ifns_paper.settings.local")

app = Celery("ifns_paper")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
