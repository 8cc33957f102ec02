"""Kill switches and cooldowns: the brakes DRA consults before any gate.

Both are small state machines whose whole state is a plain dict (``state()``
/ ``restore()``), so the Django layer can persist them and they survive a
restart. Time is passed in (epoch ns); nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum


class SwitchState(StrEnum):
    ACTIVE = "active"  # trading normally
    REDUCING = "reducing"  # only risk-reducing orders
    HALTED = "halted"  # nothing but cancels; working orders are cancelled


SEVERITY = {SwitchState.ACTIVE: 0, SwitchState.REDUCING: 1, SwitchState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class SwitchChange:
    scope: str  # "global" | "lane:<name>" | "session:<id>"
    before: SwitchState
    after: SwitchState
    ts: int
    actor: str
    reason: str

    def payload(self) -> dict:
        return {"scope": self.scope, "from": str(self.before), "to": str(self.after), "actor": self.actor,
                "reason": self.reason}


class KillSwitches:
    """Switch states by scope; the effective state of a session is the most severe
    of the global switch, its lane's and its own."""

    def __init__(self) -> None:
        self._states: dict[str, SwitchState] = {}

    def get(self, scope: str) -> SwitchState:
        return self._states.get(scope, SwitchState.ACTIVE)

    def set(self, scope: str, state: SwitchState | str, *, ts: int, actor: str, reason: str) -> SwitchChange | None:
        """Set a scope's switch; returns the change, or None when nothing changed."""
        new = SwitchState(state)
        old = self.get(scope)
        if new == old:
            return None
        self._states[scope] = new
        return SwitchChange(scope, old, new, ts, actor, reason)

    def effective(self, *, lane: str, session: str) -> SwitchState:
        states = [self.get("global"), self.get(f"lane:{lane}"), self.get(f"session:{session}")]
        return max(states, key=SEVERITY.__getitem__)

    def state(self) -> dict:
        return {scope: str(s) for scope, s in self._states.items() if s is not SwitchState.ACTIVE}

    def restore(self, state: dict) -> None:
        self._states = {scope: SwitchState(s) for scope, s in state.items()}


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """No new risk for ``duration_ns`` after ``max_breaches`` breaches, or a loss of
    ``max_loss`` (account currency), within ``window_ns``."""

    max_breaches: int = 3
    max_loss: float = float("inf")
    window_ns: int = 60 * 1_000_000_000
    duration_ns: int = 300 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class CooldownChange:
    active: bool
    ts: int
    until: int
    reason: str

    def payload(self) -> dict:
        return {"active": self.active, "until_ns": self.until, "reason": self.reason}


class Cooldown:
    def __init__(self, policy: CooldownPolicy) -> None:
        self.policy = policy
        self.until = 0  # cooling down while ts < until
        self._breaches: deque[int] = deque()
        self._equity: deque[tuple[int, float]] = deque()

    def active(self, ts: int) -> bool:
        return ts < self.until

    def _start(self, ts: int, reason: str) -> CooldownChange:
        self.until = ts + self.policy.duration_ns
        self._breaches.clear()
        return CooldownChange(True, ts, self.until, reason)

    def on_breach(self, ts: int) -> CooldownChange | None:
        if self.active(ts):
            return None
        self._breaches.append(ts)
        while self._breaches and self._breaches[0] <= ts - self.policy.window_ns:
            self._breaches.popleft()
        if len(self._breaches) >= self.policy.max_breaches:
            return self._start(ts, f"{len(self._breaches)} risk breaches within the window")
        return None

    def on_equity(self, ts: int, equity: float) -> CooldownChange | None:
        """Track equity; a drop of ``max_loss`` from the window's high starts a cooldown.

        The window keeps only samples that can still be its maximum (a monotonic
        queue), so each call is O(1) amortized and the state stays small.
        """
        if self.policy.max_loss == float("inf"):
            return None  # no loss rule configured
        while self._equity and self._equity[-1][1] <= equity:
            self._equity.pop()
        self._equity.append((ts, equity))
        while self._equity[0][0] <= ts - self.policy.window_ns:
            self._equity.popleft()
        if self.active(ts):
            return None
        high = self._equity[0][1]
        if high - equity >= self.policy.max_loss:
            return self._start(ts, f"lost {high - equity:.2f} within the window")
        return None

    def force(self, ts: int, *, active: bool, duration_ns: int = 0, reason: str) -> CooldownChange | None:
        """An operator's decision: start a cooldown of ``duration_ns`` from ``ts`` (or move
        the end of the one in force), or end the one in force now. Returns the change, or
        None when clearing a session that is not cooling down. A start forgets the breaches
        counted so far, like an automatic one."""
        if active:
            if duration_ns <= 0:
                raise ValueError("a cooldown needs a positive duration")
            self.until = ts + duration_ns
            self._breaches.clear()
            return CooldownChange(True, ts, self.until, reason)
        if not self.active(ts):
            return None
        self.until = 0
        return CooldownChange(False, ts, ts, reason)

    def expire(self, ts: int) -> CooldownChange | None:
        """The end of a cooldown, reported once when time passes it."""
        if self.until and ts >= self.until:
            until, self.until = self.until, 0
            return CooldownChange(False, until, until, "cooldown over")
        return None

    def state(self) -> dict:
        return {"until": self.until, "breaches": list(self._breaches), "equity": [list(e) for e in self._equity]}

    def restore(self, state: dict) -> None:
        self.until = int(state.get("until", 0))
        self._breaches = deque(state.get("breaches", []))
        self._equity = deque((int(t), float(e)) for t, e in state.get("equity", []))
