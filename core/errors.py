"""Domain errors, in one module, each carrying what a user needs to fix the input."""

from __future__ import annotations


class DeepRegimeError(Exception):
    """Base class: every error the service raises on purpose."""


class DataValidationError(DeepRegimeError):
    """Input data that cannot be accepted; names the file, line and field when known."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.field = field
        parts = [source] if source else []
        if line is not None:
            parts.append(f"line {line}")
        if field:
            parts.append(f"field '{field}'")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


class ConfigError(DeepRegimeError, ValueError):
    """A parameter outside its accepted range; the message quotes the value."""


class NoDataError(DeepRegimeError):
    """The store does not hold what the computation needs (yet)."""


class NotFoundError(DeepRegimeError):
    """The named thing (date, run, model version, publication) does not exist."""


class ModelUnavailableError(DeepRegimeError):
    """The requested policy needs the classifier, which is not serving."""


class ConflictError(DeepRegimeError):
    """The name is taken by something else (e.g. a registered rule set with another
    definition): answered 409."""
