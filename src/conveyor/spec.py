"""The project specification, ``conveyor.yaml``: one ML problem and the policies of its line.

Loading validates every field; an error names the field, the bad value and what is allowed::

    conveyor.yaml: 'task' must be one of 'binary', 'multiclass', 'regression'. Got 'clasification'
    instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conveyor.core.alias import Alias
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.hosts import check_origins

SPEC_FILENAME = "conveyor.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SeverityName = Literal["error", "warning"]
TimestampFormat = Literal["auto", "year", "fractional_year", "epoch_s", "epoch_ms"]
TimePart = Literal["year", "month", "day", "day_of_year", "hour", "minute"]


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
    range_quantile: float = Field(
        default=0.001,
        ge=0.0,
        lt=0.5,
        description="Learned ranges span this and 1 - this quantile of the accepted batches.",
    )
    new_categories_max: int = Field(
        default=3,
        ge=0,
        description="Unseen categories of a column a batch may bring as a reviewable change.",
    )
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
    label_leak_rank: float = Field(
        default=0.98,
        ge=0.0,
        le=1.0,
        description="Single-feature |Spearman| with a numeric label that flags a leak.",
    )
    label_leak_margin: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="A leak leaves at most this share of the error the other features leave.",
    )
    label_leak_min_rows: int = Field(default=50, ge=1)
    severities: dict[str, SeverityName] = Field(
        default_factory=dict, description="Forced severity per anomaly kind."
    )
    columns: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-column overrides of the fields above."
    )


_SPACE_KINDS = ("int", "float", "categorical")


class HpoSpec(_Section):
    """Hyperparameter search with Optuna; ``trials: 0`` trains the configured parameters."""

    trials: int = Field(default=0, ge=0, description="Trials per study (0: no search).")
    timeout_s: float | None = Field(default=None, gt=0.0, description="Wall-clock budget.")
    model: Literal["lightgbm", "xgboost"] = "lightgbm"
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per parameter {int: [lo, hi]} | {float: [lo, hi]} | {categorical: [...]}, "
        "with optional log: true; empty: the model's default space.",
    )
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    cv_folds: int = Field(default=0, ge=0, description="0: hold-out validation; k >= 2: k-fold.")
    jobs: int = Field(default=1, ge=1, description="Trials run in parallel processes.")
    multi_objective: bool = Field(
        default=False, description="Also minimise prediction latency (a Pareto front)."
    )
    seed: int = Field(default=0, ge=0)

    @field_validator("space")
    @classmethod
    def _space_is_declared(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, dist in value.items():
            kinds = [k for k in dist if k in _SPACE_KINDS]
            if len(kinds) != 1 or set(dist) - {*_SPACE_KINDS, "log", "step"}:
                raise ValueError(
                    f"parameter {name!r} must be one of {{int: [lo, hi]}}, {{float: [lo, hi]}}, "
                    f"{{categorical: [...]}} with optional log/step, got {dist!r}"
                )
        return value

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (hold-out) or at least 2, got 1")
        return value


class ReferenceSpec(_Section):
    """A known figure to report against (the rule-based system's, a human-level score)."""

    metric: str
    value: float
    name: str = "reference"


ModelName = Literal["lightgbm", "xgboost", "linear"]


def _default_models() -> list[ModelName]:
    return ["lightgbm"]


class TrainingSpec(_Section):
    """Which batches train a model and how."""

    window_batches: int = Field(
        default=8,
        ge=1,
        description="Newest accepted batches to train on; with window_rows unset, at least this "
        "many (more when the gate needs more test rows).",
    )
    window_rows: int | None = Field(
        default=None,
        ge=1,
        description="Newest accepted rows to train on (whole batches, newest first); None: "
        "enough that the test split holds gate.min_rows rows, and at least "
        "training.window_batches batches",
    )
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_by: Literal["auto", "random", "stratified", "time", "group"] = Field(
        default="auto", description="auto: by time with a timestamp, else at random."
    )
    group_column: str | None = Field(default=None, description="Groups kept whole by split_by.")
    seed: int = Field(default=0, ge=0, description="Seed of splits and resampling.")
    params: dict[str, Any] = Field(default_factory=dict, description="LightGBM parameters.")
    models: list[ModelName] = Field(
        default_factory=_default_models, min_length=1, description="Candidate models."
    )
    model_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Parameters per candidate."
    )
    ensemble: Literal["none", "average", "stacking"] = "none"
    ensemble_size: int = Field(default=3, ge=2)
    imbalance: Literal["none", "class_weight", "downsample", "upsample"] = "none"
    reference: ReferenceSpec | None = None
    hpo: HpoSpec = HpoSpec()

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"must be three positive fractions summing to 1, got {list(value)}")
        return value


class GateSpec(_Section):
    """When a challenger may replace production.

    The challenger passes when the one-sided ``confidence`` lower bound of its paired
    bootstrap difference with production is above ``-margin`` and the observed difference is
    at least zero. ``margin`` and ``slice_tolerance`` are relative to the metric: points of a
    score (``roc_auc``, ``accuracy``, ``r2``: 0.01 is one AUC point) and a share of
    production's value for an error (``rmse``, ``mae``, ``log_loss``, ``brier``: 0.01 is 1%
    of production's RMSE), never label units. At the defaults, on 1,000 test rows, a
    challenger truly better by 0.02 AUC (or 5% RMSE) is promoted at least 80% of the time and
    one truly worse by as much at most 5% (the operating curve is in ``docs/gate.md``).
    """

    metric: str | None = None
    margin: float = Field(
        default=0.015,
        ge=0.0,
        description=(
            "How much worse than production the challenger may be shown to be: points of a "
            "score (roc_auc, accuracy, r2) or a share of production's error (rmse, mae, "
            "log_loss, brier)."
        ),
    )
    floor: float | None = None
    min_rows: int = Field(
        default=200,
        ge=1,
        description=(
            "Fewest test rows to compare with production; a first model on fewer is judged "
            "on its own, with a warning."
        ),
    )
    n_bootstrap: int = Field(default=500, ge=50)
    confidence: float = Field(
        default=0.95,
        gt=0.0,
        lt=1.0,
        description="Confidence of the one-sided lower bound of the difference.",
    )
    slice_tolerance: float | None = Field(
        default=0.02,
        ge=0.0,
        description=(
            "How much worse than production a slice's metric may be, read like margin; "
            "null: unchecked."
        ),
    )
    latency_p99_ms: float | None = Field(
        default=250.0, gt=0.0, description="Budget of a single-row request's p99 latency."
    )
    infra_check: bool = Field(
        default=True, description="Serve the candidate and replay sample requests first."
    )
    infra_tolerance: float = Field(
        default=1e-6, ge=0.0, description="Largest served vs offline prediction difference."
    )
    floors: dict[str, float] = Field(
        default_factory=dict,
        description="Absolute bounds on test metrics: minimums (recall) or maximums (ece).",
    )


class InvarianceSpec(_Section):
    """Shuffling columns declared irrelevant moves no prediction by more than ``epsilon``."""

    columns: list[str] = Field(min_length=1)
    epsilon: float = Field(default=0.01, ge=0.0)


class DirectionalSpec(_Section):
    """Raising ``feature`` by ``delta`` moves predictions the declared way."""

    feature: str
    direction: Literal["increasing", "decreasing"]
    delta: float = Field(default=1.0, gt=0.0)
    max_violations: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of rows allowed to move the other way."
    )


class NoiseSpec(_Section):
    """Small Gaussian noise on numeric features moves predictions little on average."""

    scale: float = Field(default=0.01, gt=0.0, description="Noise std as a share of each std.")
    max_mean_change: float | None = Field(
        default=None,
        ge=0.0,
        description=(
            "Largest mean move of the predictions: probability units for a binary task, a "
            "share of the label's standard deviation on the test rows for a regression; "
            "null: the task's default (0.02 binary, 0.15 regression)."
        ),
    )


class EvaluationSpec(_Section):
    """How a candidate is evaluated on the held-out test rows before the gate decides."""

    slices: list[str] = Field(default_factory=list, description="Columns to compute metrics by.")
    min_slice_rows: int = Field(default=100, ge=1, description="Smaller slices are not scored.")
    calibration_bins: int = Field(default=10, ge=2)
    invariance: list[InvarianceSpec] = Field(default_factory=list)
    directional: list[DirectionalSpec] = Field(default_factory=list)
    noise: NoiseSpec | None = NoiseSpec()
    behaviour_rows: int = Field(default=1000, ge=10, description="Test rows probed.")
    latency_rows: int = Field(default=100, ge=10, description="Single-row calls timed.")


class BatchingSpec(_Section):
    """Adaptive micro-batching: concurrent requests are coalesced into one predict call."""

    enabled: bool = True
    max_batch_rows: int = Field(default=256, ge=1, description="Most rows in one predict call.")
    max_wait_ms: float = Field(
        default=2.0, ge=0.0, description="Longest a request waits for others to join its batch."
    )


def _not_production(alias: Alias) -> Alias:
    if alias is Alias.PRODUCTION:
        others = ", ".join(repr(a.value) for a in Alias if a is not Alias.PRODUCTION)
        raise ValueError(f"must be an alias other than 'production' (one of {others})")
    return alias


#: An alias traffic can be sent to beside production (a canary's, a shadow's).
ServedAlias = Annotated[Alias, AfterValidator(_not_production)]


class CanarySpec(_Section):
    """Send a share of the traffic to the version under ``alias`` instead of production."""

    alias: ServedAlias = Field(
        default=Alias.CANDIDATE, description="A registry alias other than production."
    )
    percent: float = Field(default=10.0, ge=0.0, le=100.0)
    sticky_key: str | None = Field(
        default=None, description="Record field whose hash picks the version (same key, same one)."
    )


class ShadowSpec(_Section):
    """Score mirrored traffic with the version under ``alias``; logged, never returned."""

    alias: ServedAlias = Field(
        default=Alias.SHADOW, description="A registry alias other than production."
    )


class ServingSpec(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_rows: int = Field(default=10_000, ge=1)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    max_queue: int = Field(
        default=1024, ge=1, description="Requests in flight per worker past which 503 is answered."
    )
    max_queue_wait_ms: float = Field(
        default=250.0,
        gt=0.0,
        le=600_000.0,
        description="Expected wait for scoring past which new requests get 503 (measured).",
    )
    log_buffer_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1,
        description="Prediction log bytes waiting for the disk past which requests get 503.",
    )
    allow_extra_fields: bool = False
    max_string_chars: int = Field(
        default=4096,
        ge=1,
        description="Longest string value or key in a request body; longer is a 422 naming it.",
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0.0, description="Longest time to receive a request body; then 408."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names answered besides the loopback names and the bind host.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins (https://host[:port], never '*') allowed to call the "
        "server; every other origin's writes are refused.",
    )
    batching: BatchingSpec = BatchingSpec()
    canary: CanarySpec | None = None
    shadow: ShadowSpec | None = None

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return list(check_origins(value))


class MonitoringSpec(_Section):
    """What a monitoring job computes and the built-in alert rules (see also ``alerts``)."""

    psi_threshold: float = Field(default=0.2, gt=0.0)
    bias_threshold: float = Field(default=0.1, gt=0.0, description="|mean prediction - label mean|")
    metric_floor: float | None = Field(
        default=None, description="Alert when the live metric is under it."
    )
    min_labels: int = Field(default=200, ge=1)
    window: Literal["since_last", "day"] = Field(
        default="since_last",
        description="One window since the previous report, or one window per UTC day.",
    )
    min_estimate_rows: int = Field(
        default=100, ge=1, description="Fewest unlabelled rows for a label-free estimate."
    )
    metrics_url: str | None = Field(
        default=None,
        description="A serving server's /metrics URL, read for rejected requests and errors.",
    )


DriftTest = Literal["psi", "ks", "chi2", "js", "wasserstein", "linf"]
DriftSeason = Literal["none", "day", "week", "year"]


_ALL_DRIFT_TESTS: tuple[DriftTest, ...] = ("psi", "ks", "chi2", "js", "wasserstein", "linf")
_DEFAULT_DECIDE_BY: tuple[DriftTest, ...] = ("psi",)
_DEFAULT_DRIFT_THRESHOLDS: dict[DriftTest, float] = {
    "psi": 0.2,
    "js": 0.1,
    "wasserstein": 0.1,
    "linf": 0.1,
}


class DriftSpec(_Section):
    """Drift and skew statistics: the tests run, what flags a feature, and p-value control.

    A feature is judged only with at least ``min_rows`` values on each side (else it is
    reported ``insufficient``). A test then flags it when all of these hold:

    - the change is significant: the p-value of the test's null of no change, adjusted over
      the judged features (``adjustment``), is under ``alpha``. psi, js and linf use PSI's
      asymptotic null (``PSI * n * m / (n + m)`` is chi-square with bins - 1 degrees of
      freedom), wasserstein the KS test, ks and chi2 their own;
    - the effect exceeds its floor in ``thresholds`` (psi, js, wasserstein — divided by the
      reference's standard deviation — and linf always have one; ks, the KS distance, and
      chi2, Cramér's V, only when listed);
    - when earlier accepted batches exist (ingestion), the statistic exceeds the largest seen
      between consecutive ones of the newest ``spread_windows + 1`` (the natural spread).

    A feature is ``drifted`` when a test in ``decide_by`` flags it. ``seasonal`` features are
    judged and reported but do not count in ``share_drifted``, which the drift trigger reads;
    ``season`` compares an ingested batch with the same time one period earlier instead.
    """

    tests: list[DriftTest] = Field(
        default_factory=lambda: list(_ALL_DRIFT_TESTS),
        description="Statistics computed per feature; ks and wasserstein apply to numeric "
        "columns only.",
    )
    decide_by: list[DriftTest] = Field(
        default_factory=lambda: list(_DEFAULT_DECIDE_BY),
        description="Tests whose flag marks a feature drifted.",
    )
    thresholds: dict[DriftTest, float] = Field(
        default_factory=lambda: dict(_DEFAULT_DRIFT_THRESHOLDS),
        description="Threshold of each distance test.",
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Significance level.")
    adjustment: Literal["bh", "bonferroni", "none"] = Field(
        default="bh",
        description="Multiple-testing adjustment over features: Benjamini-Hochberg, "
        "Bonferroni or none.",
    )
    columns: dict[str, dict[DriftTest, float]] = Field(
        default_factory=dict, description="Per-feature thresholds overriding ``thresholds``."
    )
    against: Literal["previous", "reference"] = Field(
        default="previous",
        description="What an ingested batch is compared with: the previous accepted batch or "
        "the first accepted one (the reference profile).",
    )
    min_rows: int = Field(
        default=100,
        ge=1,
        description="Fewest values a feature needs on each side to be judged; with fewer it is "
        "reported as insufficient, never drifted.",
    )
    spread_windows: int = Field(
        default=8,
        ge=0,
        description="Consecutive pairs of the newest accepted batches whose statistic is the "
        "yardstick of an ingested batch's drift: a feature drifts only beyond the largest "
        "change seen between them; 0 turns the yardstick off.",
    )
    seasonal: list[str] = Field(
        default_factory=list,
        description="Features that change with the season (temperature, humidity): still "
        "judged and reported, but left out of ``share_drifted`` and so of the drift trigger.",
    )
    season: DriftSeason = Field(
        default="none",
        description="Compare an ingested batch with the accepted batch covering the same time "
        "one period earlier (the same hours a day ago, the same days a week or a year ago) "
        "when the history has one; otherwise with ``against``.",
    )


MonitorMetric = Literal[
    "share_drifted",
    "max_psi",
    "prediction_psi",
    "bias",
    "live_metric",
    "estimated_metric",
    "missing_share",
    "unseen_share",
    "rejected_share",
    "error_rate",
    "latency_p95_ms",
]


class ThresholdSpec(_Section):
    """Alert when a monitoring metric of a window leaves [min, max]."""

    metric: MonitorMetric
    min: float | None = None
    max: float | None = Field(default=None, validate_default=True)
    severity: Literal["info", "warning", "critical"] = "warning"

    @field_validator("max")
    @classmethod
    def _has_bound(cls, value: float | None, info: Any) -> float | None:
        low = info.data.get("min")
        if value is None and low is None:
            raise ValueError("a threshold needs 'min', 'max' or both")
        if value is not None and low is not None and low > value:
            raise ValueError(f"'min' ({low}) must not exceed 'max' ({value})")
        return value


class LogSinkSpec(_Section):
    kind: Literal["log"]


class FileSinkSpec(_Section):
    kind: Literal["file"]
    path: str = Field(description="JSON-lines file; relative paths are under the workspace.")


class WebhookSinkSpec(_Section):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="http:// or https:// URL.")
    timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)
    allow_private: bool = Field(
        default=False, description="Allow loopback, private and link-local addresses."
    )


class CommandSinkSpec(_Section):
    kind: Literal["command"]
    argv: list[str] = Field(min_length=1, description="Program and arguments; no shell.")
    timeout_s: float = Field(default=10.0, gt=0.0, le=600.0)


SinkSpec = Annotated[
    LogSinkSpec | FileSinkSpec | WebhookSinkSpec | CommandSinkSpec, Field(discriminator="kind")
]


def _default_sinks() -> list[SinkSpec]:
    return [LogSinkSpec(kind="log")]


class AlertsSpec(_Section):
    """Alert thresholds, de-duplication and where alerts are sent."""

    cooldown_hours: float = Field(
        default=6.0, ge=0.0, description="An alert of the same kind and version is not repeated."
    )
    thresholds: list[ThresholdSpec] = Field(default_factory=list)
    sinks: list[SinkSpec] = Field(default_factory=_default_sinks)


class TriggerSpec(_Section):
    """What starts a continuous-training cycle; ``conveyor.pipeline.triggers`` documents each."""

    new_data_rows: int | None = Field(default=5000, ge=1)
    new_data_batches: int | None = Field(
        default=None, ge=1, description="Accepted batches since the last training to trigger."
    )
    drift_share: float | None = Field(
        default=0.3, gt=0.0, le=1.0, description="Share of features drifted to trigger."
    )
    consecutive_windows: int = Field(
        default=1, ge=1, description="Monitoring windows in a row a drift or decay must last."
    )
    metric_floor: float | None = None
    metric_margin: float | None = Field(
        default=0.1,
        ge=0.0,
        description="Decay when the live metric is this far behind production's test score, "
        "relative: a share of the score for error metrics (0.1: RMSE 10% higher), points for "
        "scores (0.1: AUC 0.1 lower); null: off.",
    )
    use_estimate: bool = Field(
        default=True, description="Use the label-free estimate when too few labels arrived."
    )
    min_labels: int = Field(default=200, ge=1, description="Labels a realised metric needs.")
    schedule_every_hours: float | None = Field(default=None, gt=0.0)
    schedule_cron: str | None = Field(default=None, description="Cron expression, UTC.")
    debounce_minutes: float = Field(
        default=0.0, ge=0.0, description="How long a drift or decay must hold before it fires."
    )
    cooldown_hours: float = Field(default=0.0, ge=0.0)
    max_runs_per_day: int | None = Field(
        default=None, ge=1, description="Training cycles started by triggers per 24 hours."
    )

    @field_validator("schedule_cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronSim(value, datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                raise ValueError(f"is not a cron expression ({exc})") from exc
        return value


class WatchSpec(_Section):
    """Post-release watch: roll back a release whose live metric falls behind."""

    enabled: bool = True
    min_labels: int | None = Field(
        default=None,
        ge=1,
        description="Labelled requests a release is judged on; null: adapted to the label "
        "rate, half the labels recent releases received while in production, within "
        "[min_labels_floor, max_labels].",
    )
    min_labels_floor: int = Field(
        default=100, ge=10, description="Fewest labels an adapted watch judges a release on."
    )
    max_labels: int = Field(
        default=500, ge=10, description="Most labels an adapted watch waits for."
    )
    margin: float = Field(
        default=0.02,
        ge=0.0,
        description="How much worse live than before the release rolls back: points of a "
        "score (roc_auc), a share of the previous version's value for an error (rmse).",
    )
    floor: float | None = None

    @model_validator(mode="after")
    def _floor_under_max(self) -> WatchSpec:
        if self.min_labels_floor > self.max_labels:
            raise ValueError(
                f"min_labels_floor ({self.min_labels_floor}) must be at most max_labels "
                f"({self.max_labels})"
            )
        return self


class RegistrySpec(_Section):
    """Who may release a model: with ``require_approval`` a version becomes production only
    after a person other than the requester approved it."""

    require_approval: bool = Field(
        default=False, description="Production takes only versions approved by a second person."
    )


ConditionOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]


class ConditionSpec(_Section):
    """One declarative test on a row: an input field, or ``score``/``label`` (outputs so far)."""

    field: str = Field(min_length=1)
    op: ConditionOp
    value: Any = Field(default=None, description="A number or string; a list for in / not_in.")


class ClipStep(_Section):
    """Clip scores into [min, max]."""

    kind: Literal["clip"]
    min: float | None = None
    max: float | None = None


class ThresholdStep(_Section):
    """Labels from scores: the label of the highest cutoff at or below the score."""

    kind: Literal["threshold"]
    cutoffs: list[tuple[float, int | str]] = Field(
        min_length=1, description="Pairs [min_score, label]."
    )
    default: int | str | None = Field(default=None, description="Label below every cutoff.")


class RuleStep(_Section):
    """A business rule: where every condition holds, set the score and/or the label."""

    kind: Literal["rule"]
    when: list[ConditionSpec] = Field(min_length=1)
    set_score: float | None = None
    set_label: int | str | None = None
    name: str | None = None


class FilterStep(_Section):
    """Withhold the output of rows where every condition holds; the reason is returned."""

    kind: Literal["filter"]
    when: list[ConditionSpec] = Field(min_length=1)
    reason: str = "withheld by policy"


class RerankStep(_Section):
    """Rank rows (per ``group`` field, or the whole request) by score plus boosts."""

    kind: Literal["rerank"]
    group: str | None = None
    descending: bool = True
    top_k: int | None = Field(default=None, ge=1, description="Withhold rows ranked below this.")
    boosts: list[tuple[float, list[ConditionSpec]]] = Field(
        default_factory=list, description="Pairs [added to the ranking key, conditions]."
    )


PostprocessStep = ClipStep | ThresholdStep | RuleStep | FilterStep | RerankStep


class PostprocessSpec(_Section):
    """The post-processing chain, applied in order, the same way online, in batch and offline."""

    steps: list[PostprocessStep] = Field(default_factory=list)


class OfflineSpec(_Section):
    """Precomputed predictions by entity key, served by ``GET /v1/lookup/{key}``."""

    url: str | None = Field(
        default=None,
        description="sqlite:///path, postgresql://..., redis://... (default: a SQLite file "
        "in the project directory).",
    )
    key: str | None = Field(default=None, description="Entity column keying predictions.")
    max_age_s: float = Field(
        default=86_400.0, gt=0.0, description="Older predictions are stale: scored live instead."
    )


class RetentionSpec(_Section):
    """How long data is kept; ``conveyor retention`` enforces it and never deletes lineage.

    A batch is deleted when it falls outside both bounds that are set (beyond the newest
    ``keep_batches`` and older than ``max_age_days``); None leaves that bound off.
    """

    keep_batches: int | None = Field(
        default=None, ge=1, description="Accepted batches to keep, newest first."
    )
    max_age_days: float | None = Field(
        default=None, gt=0.0, description="Accepted batches older than this may be deleted."
    )
    quarantine_keep: int | None = Field(
        default=None, ge=0, description="Quarantined batches to keep, newest first."
    )
    quarantine_max_age_days: float | None = Field(
        default=None, gt=0.0, description="Quarantined batches older than this may be deleted."
    )
    predictions_max_age_days: float | None = Field(
        default=None, gt=0.0, description="Prediction-log days older than this are deleted."
    )


class ProjectSpec(_Section):
    """One ML problem X -> Y and the policies of its line."""

    project: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    task: Literal["binary", "multiclass", "regression"]
    label: str
    positive_class: str | int | bool | None = Field(
        default=None,
        description="The class a binary model scores; default: 1, true, 'yes' or a value "
        "named so, else the rarer value (printed by `conveyor init`).",
    )
    timestamp: str | None = None
    timestamp_format: TimestampFormat = Field(
        default="auto",
        description="How the timestamp column's values read as times: auto (dates and "
        "date-times), year (2013), fractional_year (2013.25), epoch_s or epoch_ms.",
    )
    timestamp_parts: dict[TimePart, str] = Field(
        default_factory=dict,
        description="Columns that together give each row's time, e.g. {year: yr, month: mnth, "
        "hour: hr}; ingestion builds the timestamp column from them (a missing year is 2000).",
    )
    entities: list[str] = Field(default_factory=list)
    features: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    validation: ValidationSpec = ValidationSpec()
    training: TrainingSpec = TrainingSpec()
    gate: GateSpec = GateSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    serving: ServingSpec = ServingSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    drift: DriftSpec = DriftSpec()
    alerts: AlertsSpec = AlertsSpec()
    triggers: TriggerSpec = TriggerSpec()
    watch: WatchSpec = WatchSpec()
    registry: RegistrySpec = RegistrySpec()
    postprocess: PostprocessSpec = PostprocessSpec()
    offline: OfflineSpec = OfflineSpec()
    retention: RetentionSpec = RetentionSpec()

    @field_validator("timestamp_parts")
    @classmethod
    def _parts_build_the_timestamp(
        cls, value: dict[TimePart, str], info: ValidationInfo
    ) -> dict[TimePart, str]:
        timestamp = info.data.get("timestamp")
        if value and not timestamp:
            raise ValueError("needs 'timestamp' to name the column it builds")
        if timestamp in value.values():
            raise ValueError(f"must not use the 'timestamp' column {timestamp!r} it builds")
        return value

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
