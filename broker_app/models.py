"""Execution routes and policies as loaded from ``config/policies/`` (spec §4.1).

A route maps a Stage 05 ``route_id`` to a simulation behaviour of the Paper
Broker; a policy maps urgency to order type, route and slicing.
"""

from __future__ import annotations

from django.db import models

from broker_app.choices import (
    LiquidityChoices,
    OrderSide,
    OrderStatusChoices,
    OrderTypeChoices,
    TimeInForceChoices,
)


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
    extreme_slippage_bps = models.FloatField(default=25.0, help_text="a fill costing more is an incident")
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


class PaperOrder(models.Model):
    """An order a paper session sent to the Paper Broker; ``client_order_id`` is the idempotency key."""

    session = models.ForeignKey("sessions_app.PaperSession", on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=120, unique=True)
    decision_id = models.CharField(max_length=120, blank=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    quantity = models.FloatField()
    order_type = models.CharField(max_length=16, choices=OrderTypeChoices.choices)
    time_in_force = models.CharField(max_length=4, choices=TimeInForceChoices.choices)
    limit_price = models.FloatField(null=True, blank=True)
    stop_price = models.FloatField(null=True, blank=True)
    route_id = models.CharField(max_length=64)
    policy_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, choices=OrderStatusChoices.choices)
    filled_quantity = models.FloatField(default=0.0)
    average_price = models.FloatField(default=0.0)
    reason = models.CharField(max_length=64, blank=True)
    submitted_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session_id", "submitted_at", "id"]
        indexes = [models.Index(fields=["session", "status"], name="paper_order_session_status")]

    def __str__(self) -> str:
        return self.client_order_id


class PaperFill(models.Model):
    """One simulated execution (append-only)."""

    session = models.ForeignKey("sessions_app.PaperSession", on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(PaperOrder, on_delete=models.PROTECT, related_name="fills")
    fill_id = models.CharField(max_length=140, unique=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    quantity = models.FloatField()
    price = models.FloatField()
    arrival_mid = models.FloatField()
    slippage_bps = models.FloatField()
    fee = models.FloatField()
    liquidity = models.CharField(max_length=5, choices=LiquidityChoices.choices)
    route_id = models.CharField(max_length=64)
    event_time = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session_id", "event_time", "id"]

    def __str__(self) -> str:
        return self.fill_id


class PaperPosition(models.Model):
    """The paper position registry: one row per session and symbol, as of the last step."""

    session = models.ForeignKey("sessions_app.PaperSession", on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=32)
    quantity = models.FloatField(default=0.0)
    avg_cost = models.FloatField(default=0.0)
    realized = models.FloatField(default=0.0)
    unrealized = models.FloatField(default=0.0)
    fees = models.FloatField(default=0.0)
    mark = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session_id", "symbol"]
        constraints = [models.UniqueConstraint(fields=["session", "symbol"], name="paper_position_unique")]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.symbol} {self.quantity:g}"
