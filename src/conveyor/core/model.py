"""What a loaded model looks like to evaluation, serving and monitoring."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from conveyor.core.signature import Signature


class Predictor(Protocol):
    """A loaded model that scores encoded rows.

    ``predict_encoded`` takes a float64 matrix in ``signature`` order (see
    :func:`conveyor.core.signature.encode_frame`) and returns, for a binary task, shape (n,):
    the probability of the positive class ``signature.classes[1]``; for a multiclass task,
    shape (n, k): one probability per class in ``signature.classes`` order, each row summing
    to 1; for regression, shape (n,): the predicted value. ``signature.labels`` maps class
    values to these codes and back.
    """

    @property
    def signature(self) -> Signature: ...

    @property
    def kind(self) -> str: ...

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray: ...
