"""Training: baseline and LightGBM models, their safe artifact format, and the candidate trainer."""

from __future__ import annotations

from conveyor.training.formats import SKOPS_ALLOWLIST
from conveyor.training.models import (
    MODEL_FORMAT,
    LightGBMModel,
    MeanModel,
    PriorModel,
    SklearnModel,
    XGBoostModel,
    load_model,
    model_size_bytes,
    read_model_meta,
    save_model,
)
from conveyor.training.trainer import (
    DEFAULT_PARAMS,
    TrainConfig,
    TrainResult,
    train_candidates,
)

__all__ = [
    "DEFAULT_PARAMS",
    "MODEL_FORMAT",
    "LightGBMModel",
    "MeanModel",
    "PriorModel",
    "SKOPS_ALLOWLIST",
    "SklearnModel",
    "TrainConfig",
    "TrainResult",
    "XGBoostModel",
    "load_model",
    "model_size_bytes",
    "read_model_meta",
    "save_model",
    "train_candidates",
]
