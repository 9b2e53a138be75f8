"""What a loaded model looks like to evaluation, serving and monitoring."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from conveyor.core.signature import Signature


class Predictor(Protocol):
    """A loaded model that scores encoded rows.

    ``predict_encoded`` takes a float64 matrix in ``signature`` order (see
    :func:`conveyor.core.signature.encode_frame`) and returns one float per row: the positive
    class probability for a binary task, the predicted value for regression.
    """

    @property
    def signature(self) -> Signature: ...

    @property
    def kind(self) -> str: ...

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray: ...
