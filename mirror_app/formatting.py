"""Numbers and events as people read them on the Mirror and Admin pages.

Plain functions (no Django): amounts with their currency and thousands separators, basis
points, percentages, quantities rounded to the instrument's lot precision (no
``21.990000000000002``), relative ages, and a one-line description of every telemetry
event type, so the event stream reads like a blotter rather than a dump of dicts.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

DASH = "—"


def is_missing(x) -> bool:
    """Nothing to show: None, '' (a template's missing value), text that is not a number,
    NaN or infinity."""
    if x is None or isinstance(x, bool):
        return x is None
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return True


def money(x, currency: str = "", *, signed: bool = False, places: int = 2) -> str:
    """``1,234.50 USD``; with ``signed``, ``+1,234.50 USD`` / ``−1,234.50 USD``."""
    if is_missing(x):
        return DASH
    x = float(x)
    sign = ("+" if x > 0 else "−" if x < 0 else "") if signed else ("−" if x < 0 else "")
    text = f"{sign}{abs(x):,.{places}f}"
    return f"{text} {currency}".rstrip()


def bps(x, *, places: int = 1) -> str:
    return DASH if is_missing(x) else f"{float(x):,.{places}f} bps"


def pct(x, *, places: int = 2, signed: bool = False) -> str:
    """``x`` is already in percent."""
    if is_missing(x):
        return DASH
    x = float(x)
    if round(x, places) == 0:
        x = 0.0  # no "-0.000 %"
    return f"{x:+,.{places}f} %".replace("+0.", "0.", 1) if signed and x == 0 else \
        f"{x:+,.{places}f} %" if signed else f"{x:,.{places}f} %"


def lot_places(lot: float | None) -> int:
    """Decimal places of a lot size: 0.001 → 3, 0.01 → 2, 1000 → 0."""
    if not lot or lot >= 1:
        return 0
    return min(8, max(0, math.ceil(-math.log10(lot) - 1e-9)))


def qty(x, lot: float | None = None) -> str:
    """A quantity at the instrument's lot precision, signed when negative."""
    if is_missing(x):
        return DASH
    places = lot_places(lot) if lot else 8
    text = f"{float(x):,.{places}f}"
    if not lot:
        text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "−0") else text.replace("-", "−")


def price(x, *, places: int | None = None) -> str:
    """A price with enough places for the instrument (5 below 10, 2 above 1,000)."""
    if is_missing(x):
        return DASH
    x = float(x)
    if places is None:
        places = 5 if abs(x) < 10 else 3 if abs(x) < 1000 else 2
    return f"{x:,.{places}f}"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``12 s ago``, ``4 min ago``, ``3 h ago``, ``2 d ago``."""
    if moment is None:
        return DASH
    seconds = ((now or datetime.now(tz=UTC)) - moment).total_seconds()
    if seconds < 0:
        return "in " + age(now or datetime.now(tz=UTC), moment).removesuffix(" ago")
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _side(payload: dict) -> str:
    return str(payload.get("side", "")).upper()


def describe_event(kind: str, p: dict, *, lots: dict[str, float] | None = None, currency: str = "") -> str:
    """One line for a telemetry event: what happened, with units (quantities at the
    symbol's lot precision, fees in the account ``currency``)."""
    lots = lots or {}
    sym = p.get("symbol", "")
    lot = lots.get(sym)
    if kind == "order_filled":
        return (f"{_side(p)} {qty(p.get('quantity'), lot)} {sym} @ {price(p.get('price'))}"
                f" · slippage {bps(p.get('slippage_bps'))} · fee {money(p.get('fee'), currency)} · {p.get('liquidity', '')}"
                f" · {p.get('route_id', '')}")
    if kind == "order_submitted":
        limit = f" limit {price(p['limit_price'])}" if p.get("limit_price") else ""
        return (f"{_side(p)} {qty(p.get('quantity'), lot)} {sym} {p.get('type', '')}{limit} {p.get('tif', '')}"
                f" → {p.get('route_id', '')}")
    if kind == "order_rejected":
        return f"rejected {p.get('client_order_id', '')} {sym} · {p.get('reason') or p.get('detail') or ''}".strip(" ·")
    if kind == "dra_decision":
        reasons = ", ".join(p.get("reasons") or []) or "within limits"
        asked, approved = p.get("requested_quantity"), p.get("approved_quantity")
        size = f"{qty(approved, lot)} of {qty(asked, lot)}" if approved != asked else qty(asked, lot)
        return (f"{p.get('verdict', '?')} {_side(p)} {size} {sym} · {reasons}"
                + (" · risk-reducing" if p.get("risk_reducing") else ""))
    if kind == "msi_proposal":
        signal = DASH if is_missing(p.get("signal")) else f"{float(p['signal']):+.3f}"
        regime = (p.get("features") or {}).get("regime")
        return (f"target position {qty(p.get('target_position'), lot)} {sym} · signal {signal}"
                + (f" · {regime}" if regime else ""))
    if kind == "paper_session_state_change":
        why = f" · {p['reason']}" if p.get("reason") else ""
        return f"{p.get('from', '?')} → {p.get('to', '?')} by {p.get('actor', '?')}{why}"
    if kind == "kill_switch_change":
        why = f" · {p['reason']}" if p.get("reason") else ""
        return f"kill switch {p.get('scope', '')}: {p.get('from', '?')} → {p.get('to', '?')} by {p.get('actor', '?')}{why}"
    if kind == "cooldown_state_change":
        who = f" by {p['actor']}" if p.get("actor") else ""
        if p.get("active"):
            until = datetime.fromtimestamp(p["until_ns"] / 1e9, tz=UTC).strftime("%H:%M:%S") if p.get("until_ns") else "?"
            return f"cooldown until {until} UTC{who} · {p.get('reason', '')}"
        return f"cooldown over{who} · {p.get('reason', '')}"
    if kind == "risk_breach":
        return f"{p.get('kind', 'breach')} {sym} · {p.get('detail', '')}".strip(" ·")
    if kind == "incident":
        what = p.get("kind", "incident")
        if what == "data_gap":
            return f"data gap {sym} · {float(p.get('gap_ms', 0)):,.0f} ms without quotes"
        if what == "extreme_slippage":
            return f"extreme slippage {sym} · {bps(p.get('slippage_bps'))} (threshold {bps(p.get('threshold_bps'))})"
        detail = p.get("reason") or p.get("detail") or p.get("message") or ""
        return f"{what.replace('_', ' ')} {sym} · {detail}".replace("  ", " ").strip(" ·")
    # anything else: its keys and values, short
    return ", ".join(f"{k}={v}" for k, v in list(p.items())[:6])
