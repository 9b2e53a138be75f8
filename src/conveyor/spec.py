"""The project specification, ``conveyor.yaml``: one ML problem and the policies of its line.

Loading validates every field; an error names the field, the bad value and what is allowed::

    conveyor.yaml: 'task' must be one of 'binary', 'regression'. Got 'clasification' instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conveyor.core.errors import ConfigError, NotFoundError

SPEC_FILENAME = "conveyor.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SeverityName = Literal["error", "warning"]


class ValidationSpec(_Section):
    """How strict ingestion is; each field is the ``conveyor.data.ValidationPolicy`` field of
    the same name, which documents it. An ``error`` quarantines the batch."""

    extra_columns: SeverityName = "error"
    missing_columns: SeverityName = "error"
    allow_nan: bool = False
    unseen_category_share_warn: float = Field(default=0.0, ge=0.0, le=1.0)
    unseen_category_share_error: float = Field(default=0.2, ge=0.0, le=1.0)
    out_of_range: SeverityName = "warning"
    range_slack: float = Field(default=0.5, ge=0.0)
    min_rows: int = Field(default=1, ge=1, description="Fewer rows quarantine the batch.")
    null_rate_spike: float = Field(default=0.2, ge=0.0, le=1.0)
    constant_label: SeverityName = "warning"
    duplicate_rows: SeverityName = "warning"
    duplicate_rows_share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of repeated rows tolerated."
    )
    duplicate_keys: SeverityName = "error"
    duplicate_keys_share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of repeated entity+time keys tolerated."
    )
    volume_jump: SeverityName = "warning"
    volume_ratio: float = Field(
        default=5.0, ge=1.0, description="Allowed factor off the recent median row count."
    )
    volume_window: int = Field(default=5, ge=1, description="Accepted batches in that median.")
    label_leak: SeverityName = "error"
    label_leak_auc: float = Field(
        default=0.98, ge=0.5, le=1.0, description="Single-feature AUC that flags a leak."
    )
    label_leak_min_rows: int = Field(default=50, ge=1)
    severities: dict[str, SeverityName] = Field(
        default_factory=dict, description="Forced severity per anomaly kind."
    )
    columns: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-column overrides of the fields above."
    )


class TrainingSpec(_Section):
    """Which batches train a model and how."""

    window_batches: int = Field(default=8, ge=1, description="Newest accepted batches to train on.")
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    params: dict[str, Any] = Field(default_factory=dict, description="LightGBM parameters.")

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"must be three positive fractions summing to 1, got {list(value)}")
        return value


class GateSpec(_Section):
    """When a challenger may replace production."""

    metric: str | None = None
    margin: float = Field(default=0.005, ge=0.0)
    floor: float | None = None
    min_rows: int = Field(default=200, ge=1)
    n_bootstrap: int = Field(default=500, ge=50)


class ServingSpec(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_rows: int = Field(default=10_000, ge=1)
    workers: int = Field(default=1, ge=1)


class MonitoringSpec(_Section):
    psi_threshold: float = Field(default=0.2, gt=0.0)
    bias_threshold: float = Field(default=0.1, gt=0.0, description="|mean prediction - label mean|")
    metric_floor: float | None = Field(
        default=None, description="Alert when the live metric is under it."
    )
    min_labels: int = Field(default=200, ge=1)


class TriggerSpec(_Section):
    """What starts a continuous-training cycle."""

    new_data_rows: int | None = Field(default=5000, ge=1)
    drift_share: float | None = Field(
        default=0.3, gt=0.0, le=1.0, description="Share of features drifted to trigger."
    )
    metric_floor: float | None = None
    schedule_every_hours: float | None = Field(default=None, gt=0.0)
    cooldown_hours: float = Field(default=0.0, ge=0.0)


class WatchSpec(_Section):
    """Post-release watch: roll back a release whose live metric falls behind."""

    enabled: bool = True
    min_labels: int = Field(default=500, ge=1)
    margin: float = Field(default=0.02, ge=0.0)
    floor: float | None = None


class RegistrySpec(_Section):
    """Who may release a model: with ``require_approval`` a version becomes production only
    after a person other than the requester approved it."""

    require_approval: bool = Field(
        default=False, description="Production takes only versions approved by a second person."
    )


class ProjectSpec(_Section):
    """One ML problem X -> Y and the policies of its line."""

    project: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    task: Literal["binary", "regression"]
    label: str
    timestamp: str | None = None
    entities: list[str] = Field(default_factory=list)
    features: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    validation: ValidationSpec = ValidationSpec()
    training: TrainingSpec = TrainingSpec()
    gate: GateSpec = GateSpec()
    serving: ServingSpec = ServingSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    triggers: TriggerSpec = TriggerSpec()
    watch: WatchSpec = WatchSpec()
    registry: RegistrySpec = RegistrySpec()

    @property
    def model_name(self) -> str:
        return self.project

    def to_yaml(self) -> str:
        return str(
            yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False)
        )


def _describe(error: Mapping[str, Any]) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(top level)"
    value = error.get("input")
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        return f"'{field}' must be one of {ctx.get('expected')}. Got {value!r} instead."
    if kind == "extra_forbidden":
        return f"'{field}' is not a known field."
    if kind == "missing":
        return f"'{field}' is required."
    return f"'{field}' {error['msg'].lower()}. Got {value!r} instead."


def parse_spec(data: Any, *, source: str = SPEC_FILENAME) -> ProjectSpec:
    """Validate a mapping as a project spec; raise ConfigError naming every bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}.")
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from exc


def load_spec(path: Path) -> ProjectSpec:
    """Read and validate ``conveyor.yaml``.

    Raises
    ------
    NotFoundError
        If the file does not exist.
    ConfigError
        If it is not YAML or a field is invalid.
    """
    if not path.is_file():
        raise NotFoundError(
            f"No project spec at '{path}'. Create one with `conveyor init --from FILE`."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}.") from exc
    return parse_spec(data, source=str(path))
