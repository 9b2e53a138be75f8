"""Served traffic for the release tests: what a version answered, then the labels users sent."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from conveyor.core.signature import encode_frame
from conveyor.serving.feedback import FeedbackLog
from conveyor.serving.predlog import PredictionLogWriter, iso_now, prediction_entry
from conveyor.spec import ProjectSpec
from conveyor.training.service import load_version
from conveyor.workspace import Workspace


def serve_and_label(
    ws: Workspace,
    spec: ProjectSpec,
    batch: pd.DataFrame,
    version: int,
    *,
    labels: Sequence[int] | None = None,
    event_time: str | None = None,
) -> None:
    """Log what ``version`` answers for ``batch``, then the labels (the batch's own by default),
    as the prediction server and its users would; with ``event_time``, each request carries
    that column's time, as a client sending the event's time does."""
    model = load_version(ws, spec.model_name, version)
    scores = model.predict_encoded(encode_frame(batch, model.signature))
    writer = PredictionLogWriter(ws.project_dir(spec.project, "predictions"))
    writer.write(
        [
            prediction_entry(
                request_id=r["flight_id"],
                ts=iso_now(),
                model_version=version,
                inputs={
                    **({event_time: r[event_time].isoformat()} if event_time else {}),
                    **{k: r[k] for k in ("hour", "distance", "carrier")},
                },
                score=float(s),
                label=int(s > 0.5),
                latency_ms=1.0,
            )
            for r, s in zip(batch.to_dict(orient="records"), scores, strict=True)
        ]
    )
    writer.close()
    truth = batch["late"].tolist() if labels is None else list(labels)
    FeedbackLog(ws.project_dir(spec.project, "feedback")).record(
        [
            {"request_id": rid, "label": int(label)}
            for rid, label in zip(batch["flight_id"], truth, strict=True)
        ]
    )
