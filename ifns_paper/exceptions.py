"""One exception hierarchy for the application layer.

Services raise these; the DRF exception handler (:mod:`ifns_paper.api`) and
the management commands map them to HTTP responses and exit codes once.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """Base class: a clear message plus optional machine-readable detail."""

    status_code = 400

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def described(self) -> str:
        """The message with the field errors, for a terminal: ``msg (field: problem; ...)``."""
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.extra.get("errors", {}).items())
        return f"{self.message} ({details})" if details else self.message


class NotFound(ApplicationError):
    status_code = 404


class Conflict(ApplicationError):
    """The request is well formed but the current state forbids it."""

    status_code = 409


class ValidationFailed(ApplicationError):
    """Input that breaks the configuration rules; ``errors`` maps field → messages."""

    def __init__(self, message: str, errors: dict[str, list[str]]) -> None:
        super().__init__(message, extra={"errors": errors})
        self.errors = errors
