"""The one exception hierarchy of Conveyor.

::

    ConveyorError
    ├── NotFoundError            (also LookupError)
    ├── AlreadyExistsError
    ├── ConflictError            a concurrent change won; retry with fresh state
    ├── InvalidInputError        (also ValueError)
    │   ├── SchemaError          data does not match the schema
    │   └── DataQualityError     data matches the schema but fails a quality check
    ├── ConfigError              conveyor.yaml or settings are wrong
    ├── BlockedError             the line stopped on purpose (exit code 3)
    │   ├── QuarantinedError     a batch failed validation and was quarantined
    │   └── GateRejectedError    a challenger did not pass the gate
    └── StoreError               a backend failed (database, object store)

Messages name the thing, the bad value and what is allowed.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Base class of every error Conveyor raises on purpose."""


class NotFoundError(ConveyorError, LookupError):
    """The named object does not exist."""


class AlreadyExistsError(ConveyorError):
    """An object with this identity exists already."""


class ConflictError(ConveyorError):
    """A concurrent change won (compare-and-swap failed, lease held)."""


class InvalidInputError(ConveyorError, ValueError):
    """The input is malformed or out of range."""


class SchemaError(InvalidInputError):
    """Data does not match the schema."""


class DataQualityError(InvalidInputError):
    """Data matches the schema but fails a quality check."""


class ConfigError(ConveyorError, ValueError):
    """The project specification or the settings are invalid."""


class BlockedError(ConveyorError):
    """The line stopped on purpose: validation or the gate said no."""

    def __init__(self, message: str, *, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.evidence: dict[str, Any] = evidence or {}


class QuarantinedError(BlockedError):
    """A batch had an error-level anomaly and was quarantined."""


class GateRejectedError(BlockedError):
    """A challenger did not pass the gate; production is unchanged."""


class StoreError(ConveyorError):
    """A storage backend failed."""
