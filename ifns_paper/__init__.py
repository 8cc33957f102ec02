"""IFNS Paper — Stage 06 paper trading.

Kept import-free on purpose: ``ifns_paper.engine`` must be importable without
Django or Celery. The Celery app is loaded by ``sessions_app``'s AppConfig
(so ``@shared_task`` binds to it) and by ``celery -A ifns_paper.celery``.
"""
