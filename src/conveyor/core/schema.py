"""Schemas, anomalies and validation reports: what a batch must look like and what was wrong."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ColumnKind(StrEnum):
    """How a column is treated by validation, profiles and models."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"


class ColumnRole(StrEnum):
    """What a column is for in the project."""

    FEATURE = "feature"
    LABEL = "label"
    TIMESTAMP = "timestamp"
    ENTITY = "entity"
    IGNORED = "ignored"


class Severity(StrEnum):
    """An error quarantines a batch; a warning is reported and recorded."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column: its kind, role, nullability, range and categorical domain."""

    name: str
    kind: ColumnKind
    role: ColumnRole = ColumnRole.FEATURE
    nullable: bool = True
    min_value: float | None = None
    max_value: float | None = None
    categories: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["role"] = str(self.role)
        data["categories"] = list(self.categories) if self.categories is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSchema:
        cats = data.get("categories")
        return cls(
            name=str(data["name"]),
            kind=ColumnKind(data["kind"]),
            role=ColumnRole(data.get("role", "feature")),
            nullable=bool(data.get("nullable", True)),
            min_value=data.get("min_value"),
            max_value=data.get("max_value"),
            categories=tuple(str(c) for c in cats) if cats is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Schema:
    """An ordered set of columns; ``version`` counts accepted evolutions from 1."""

    columns: tuple[ColumnSchema, ...]
    version: int = 1

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(names) != len(set(names)):
            raise ValueError(f"Schema column names must be unique. Got {names} instead.")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def with_role(self, *roles: ColumnRole) -> list[ColumnSchema]:
        return [c for c in self.columns if c.role in roles]

    @property
    def features(self) -> list[ColumnSchema]:
        return self.with_role(ColumnRole.FEATURE)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        return cls(
            columns=tuple(ColumnSchema.from_dict(c) for c in data["columns"]),
            version=int(data.get("version", 1)),
        )


@dataclass(frozen=True, slots=True)
class SchemaRecord:
    """One stored schema version with when, by whom and why it was saved."""

    schema: Schema
    created_at: datetime
    author: str | None = None
    reason: str | None = None

    @property
    def version(self) -> int:
        return self.schema.version


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One thing wrong with a batch, with its severity and the evidence."""

    kind: str
    severity: Severity
    message: str
    column: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": str(self.severity),
            "message": self.message,
            "column": self.column,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anomaly:
        return cls(
            kind=str(data["kind"]),
            severity=Severity(data["severity"]),
            message=str(data["message"]),
            column=data.get("column"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """All anomalies of one batch; the batch passes when none is an error."""

    anomalies: tuple[Anomaly, ...] = ()

    @classmethod
    def of(cls, anomalies: Iterable[Anomaly]) -> ValidationReport:
        return cls(tuple(anomalies))

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity is Severity.WARNING]

    @property
    def passed(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if not self.anomalies:
            return "no anomalies"
        return "; ".join(a.message for a in (self.errors or self.warnings))

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "anomalies": [a.to_dict() for a in self.anomalies]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        return cls(tuple(Anomaly.from_dict(a) for a in data.get("anomalies", [])))
