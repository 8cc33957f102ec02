"""Numbers with their units on the pages (``mirror_app.formatting``)."""

from __future__ import annotations

from django import template

from mirror_app import formatting

register = template.Library()


@register.filter
def money(x, currency: str = ""):
    return formatting.money(x, currency)


@register.filter
def signed_money(x, currency: str = ""):
    return formatting.money(x, currency, signed=True)


@register.filter
def bps(x):
    return formatting.bps(x)


@register.filter
def pct(x, places: int = 2):
    return formatting.pct(x, places=places)


@register.filter
def signed_pct(x, places: int = 2):
    return formatting.pct(x, places=places, signed=True)


@register.filter
def frac_pct(x, places: int = 1):
    """A fraction shown in percent (0.067 → 6.7 %)."""
    return formatting.DASH if formatting.is_missing(x) else formatting.pct(float(x) * 100, places=places)


@register.filter
def price(x):
    return formatting.price(x)


@register.filter
def age(moment):
    return formatting.age(moment)


@register.filter
def sign_class(x) -> str:
    """``up`` / ``down`` / ``flat`` for colouring a signed figure."""
    if formatting.is_missing(x):
        return "flat"
    x = float(x)
    return "up" if x > 0 else "down" if x < 0 else "flat"


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)


@register.filter
def json_pretty(value) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def ns_time(ns) -> str:
    """Epoch nanoseconds as ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC)."""
    from datetime import UTC, datetime

    if formatting.is_missing(ns):
        return formatting.DASH
    return datetime.fromtimestamp(int(ns) / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
