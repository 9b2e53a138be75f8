"""Data capability: schema inference, batch validation, profiles, drift statistics and splits.

Pure functions over pandas DataFrames; storage lives elsewhere.
"""

from __future__ import annotations

from conveyor.data.drift import (
    adjust_pvalues,
    compute_drift,
    compute_drift_frames,
    compute_drift_parquet,
    compute_skew,
    jensen_shannon,
    linf,
    psi,
)
from conveyor.data.evolution import SchemaDiff, diff_schemas, evolve_schema
from conveyor.data.policy import ValidationPolicy
from conveyor.data.profiles import merge_profiles, profile_frame
from conveyor.data.schemas import infer_schema
from conveyor.data.splits import random_split, time_split
from conveyor.data.validation import validate_batch

__all__ = [
    "SchemaDiff",
    "ValidationPolicy",
    "adjust_pvalues",
    "compute_drift",
    "compute_drift_frames",
    "compute_drift_parquet",
    "compute_skew",
    "diff_schemas",
    "evolve_schema",
    "infer_schema",
    "jensen_shannon",
    "linf",
    "merge_profiles",
    "profile_frame",
    "psi",
    "random_split",
    "time_split",
    "validate_batch",
]
