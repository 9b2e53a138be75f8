"""Online and batch serving: validation, hot-swapped models, prediction log and feedback."""

from conveyor.serving.app import HttpError, create_serving_app
from conveyor.serving.batch import score_file
from conveyor.serving.batching import BatchingConfig, MicroBatcher
from conveyor.serving.feedback import FeedbackLog, FeedbackResult, join_feedback, live_metrics
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.offline import OfflineEntry, build_offline, open_offline_store
from conveyor.serving.postprocess import PostProcessor, PostprocessResult
from conveyor.serving.predlog import (
    PredictionLogError,
    PredictionLogWriter,
    compact_predictions,
    expand_inputs,
    read_predictions,
)
from conveyor.serving.routing import Canary, Deployment, Shadow
from conveyor.serving.slot import LoadedModel, ModelSlot
from conveyor.serving.validation import (
    RecordValidator,
    ServingLimits,
    ValidatedBatch,
    columns_to_records,
)

__all__ = [
    "BatchingConfig",
    "Canary",
    "Deployment",
    "MicroBatcher",
    "Shadow",
    "FeedbackLog",
    "FeedbackResult",
    "HttpError",
    "LoadedModel",
    "OfflineEntry",
    "PostProcessor",
    "PostprocessResult",
    "PredictionLogError",
    "ModelSlot",
    "PredictionLogWriter",
    "RecordValidator",
    "ServingLimits",
    "ServingMetrics",
    "ValidatedBatch",
    "columns_to_records",
    "compact_predictions",
    "create_serving_app",
    "expand_inputs",
    "build_offline",
    "join_feedback",
    "live_metrics",
    "open_offline_store",
    "read_predictions",
    "score_file",
]
