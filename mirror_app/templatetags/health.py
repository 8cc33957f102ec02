"""Health cells of the Mirror pages, rendered the same way on the server and by ``live.js``."""

from __future__ import annotations

import json

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ifns_paper.engine.controls import SwitchState

_DASH = mark_safe('<span class="muted">—</span>')

register = template.Library()


@register.filter
def lag_ms(value) -> str:
    """Step lag: whole milliseconds with a thousands separator, or a dash."""
    return "—" if value is None else f"{value:,.0f} ms"


@register.filter
def per_min(value) -> str:
    return "—" if value is None else f"{value:,d}/min"


@register.simple_tag
def switch_badge(health) -> SafeString:
    """The kill switch in force: ``active`` quietly, otherwise the state and where it comes from."""
    sw = health["kill_switch"]
    if sw["state"] == SwitchState.ACTIVE:
        return mark_safe('<span class="muted" title="kill switch">active</span>')
    return format_html('<span class="status switch-{}" title="{}">{} · {}</span>', sw["state"], sw["reason"],
                       sw["state"], sw["scope"])


@register.simple_tag
def cooldown_badge(health) -> str:
    cd = health["cooldown"]
    if not cd["active"]:
        return _DASH
    return format_html('<span class="status cooldown-on" title="{}">until {}Z</span>', cd["reason"], cd["until"][11:19])


@register.simple_tag
def fault_badge(health) -> str:
    if not health["last_fault"]:
        return _DASH
    return format_html('<span class="status fault" title="{} at {}">{}</span>', health["last_fault"],
                       health["last_fault_at"], health["last_fault"][:60])


@register.filter
def as_json(value) -> str:
    """A payload as compact JSON, the form the live rows use (``static/js/live.js``); escaped
    by the template like any text."""
    return json.dumps(value, separators=(",", ":"), default=str)
