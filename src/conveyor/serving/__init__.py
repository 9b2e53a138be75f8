"""Online and batch serving: validation, hot-swapped models, prediction log and feedback."""

from conveyor.serving.app import HttpError, create_serving_app
from conveyor.serving.batch import score_file
from conveyor.serving.feedback import FeedbackLog, FeedbackResult, join_feedback
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.predlog import (
    PredictionLogWriter,
    compact_predictions,
    expand_inputs,
    read_predictions,
)
from conveyor.serving.slot import LoadedModel, ModelSlot
from conveyor.serving.validation import (
    RecordValidator,
    ServingLimits,
    ValidatedBatch,
    columns_to_records,
)

__all__ = [
    "FeedbackLog",
    "FeedbackResult",
    "HttpError",
    "LoadedModel",
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
    "join_feedback",
    "read_predictions",
    "score_file",
]
