"""Celery tasks of telemetry_app (beat): thin wrappers around one service each."""

from __future__ import annotations

import time

from celery import shared_task

from telemetry_app.services import series_downsample

SERIES_FULL_RESOLUTION_S = 3600  # the last hour keeps every sample; older ones one a minute


@shared_task(ignore_result=True)
def series_thin() -> int:
    """Periodic: thin equity samples older than an hour to one a minute."""
    return series_downsample(before_ns=time.time_ns() - SERIES_FULL_RESOLUTION_S * 1_000_000_000)
