"""Run the serving app with the feedback and offline-lookup routes, for integration tests.

Usage: python scoring_app.py PORT DIR TOKEN MAX_AGE_S [MAX_FILE_BYTES]

Serves version 1 of the model of ``serve_app.py``; the prediction log is DIR/predictions, the
feedback DIR/feedback and the offline table DIR/offline.db (namespace ``it``, key
``flight_id``). Post-processing withholds carrier ``AA``. With MAX_FILE_BYTES, no file the
server writes may grow past that size (``RLIMIT_FSIZE``): writes past it fail like on a full
disk.
"""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path

import uvicorn
from serve_app import train

from conveyor.serving.app import create_serving_app
from conveyor.serving.feedback import FeedbackLog, feedback_routes
from conveyor.serving.offline import lookup_routes, open_offline_store
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.slot import ModelSlot
from conveyor.spec import PostprocessSpec

POST = PostprocessSpec.model_validate(
    {"steps": [{"kind": "filter", "when": [{"field": "carrier", "op": "eq", "value": "AA"}],
                "reason": "AA is not scored"}]}
)  # fmt: skip


def main() -> None:
    port, base, token, max_age_s = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    if len(sys.argv) > 5:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, not death
        limit = int(sys.argv[5])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    model = train(1)
    slot = ModelSlot(lambda: (1, model), lambda: 1)
    log = PredictionLogWriter(base / "predictions")
    app = create_serving_app(
        slot=slot, log=log, project="it", model_name="delays", poll_interval_s=0.1,
        passthrough=("flight_id",),
    )  # fmt: skip
    feedback = FeedbackLog(base / "feedback", predictions_dir=base / "predictions")
    app.router.routes.extend(feedback_routes(feedback, task="binary", token=token))
    store = open_offline_store(f"sqlite:///{base / 'offline.db'}", namespace="it")
    app.router.routes.extend(
        lookup_routes(
            store,
            key="flight_id",
            max_age_s=float(max_age_s),
            slot=slot,
            log=log,
            postprocessor=PostProcessor(POST),
        )  # fmt: skip
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
