"""Execution routes and policies as loaded from ``config/policies/`` (spec §4.1).

A route maps a Stage 05 ``route_id`` to a simulation behaviour of the Paper
Broker; a policy maps urgency to order type, route and slicing.
"""

from __future__ import annotations

from django.db import models


class ExecutionRoute(models.Model):
    """A route of the Default Parameters Registry (``execution_routes.json``)."""

    route_id = models.CharField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    fill_model = models.CharField(max_length=32, help_text="touch | vwap | sqrt_impact | limit_queue")
    simulation = models.JSONField(help_text="fill model and its parameters")
    latency = models.JSONField(help_text="order_insert_ms, cancel_ms, market_data_ms")
    fees = models.JSONField(help_text="maker_bps, taker_bps, min_fee")
    stale_quote_ms = models.PositiveIntegerField()
    failures = models.JSONField(default=dict)
    trading_hours = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["route_id"]

    def __str__(self) -> str:
        return self.route_id


class ExecutionPolicy(models.Model):
    """An execution policy (``execution_policies.json``)."""

    policy_id = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    urgency = models.CharField(max_length=16)
    order_type = models.CharField(max_length=16)
    time_in_force = models.CharField(max_length=8)
    route = models.ForeignKey(ExecutionRoute, on_delete=models.PROTECT, related_name="policies")
    limit_offset_bps = models.FloatField(null=True, blank=True)
    slicing = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["policy_id"]
        verbose_name_plural = "execution policies"

    def __str__(self) -> str:
        return self.policy_id
