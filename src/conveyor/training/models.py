"""Trained models, and their artifact: one JSON document that executes nothing when loaded.

Every model here is a :class:`conveyor.core.model.Predictor`: it scores a float64 matrix
encoded by :func:`conveyor.core.signature.encode_frame` (or ``encode_records`` in serving), so
training and serving share one encoding. The artifact is::

    {"format": "conveyor.model/1", "kind": "lightgbm", "signature": {...}, "meta": {...},
     "payload": <kind-specific>}

where a LightGBM payload is LightGBM's own text model format, an XGBoost payload XGBoost's JSON
model, a scikit-learn payload a base64 skops file loaded against a fixed allowlist (see
:mod:`conveyor.training.formats`) and an ONNX payload a base64 graph of standard operators
with inline weights (see :mod:`conveyor.training.onnx_format`). Loading parses JSON and these
formats; no pickle, no import of a named class, nothing runs. A raw pickle is loaded only with
``trusted=True`` and the sha256 the caller expects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.core.errors import InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.signature import Signature
from conveyor.training.formats import (
    dump_sklearn,
    dump_xgboost,
    load_pickle,
    load_sklearn,
    load_xgboost,
    xgboost,
)
from conveyor.training.onnx_format import onnx_model

if TYPE_CHECKING:
    import lightgbm as lgb


def lightgbm() -> ModuleType:
    """LightGBM, imported on first use: with scikit-learn it costs over a second of start-up
    that commands which never train or load a model should not pay."""
    import lightgbm as lgb  # noqa: PLC0415

    return lgb


#: The tag of the artifact format written by :func:`save_model`.
MODEL_FORMAT = "conveyor.model/1"


def check_matrix(matrix: np.ndarray, signature: Signature) -> np.ndarray:
    """Return ``matrix`` as a 2-D float64 array with one column per signature input.

    Raises
    ------
    InvalidInputError
        If the matrix is not 2-D or has the wrong number of columns.
    """
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(signature.inputs):
        raise InvalidInputError(
            f"The encoded matrix must have shape (n, {len(signature.inputs)}), one column per "
            f"signature input. Got shape {arr.shape} instead."
        )
    return arr


def _empty(signature: Signature) -> np.ndarray:
    """The scores of no rows: shape (0, k) for a multiclass model, (0,) otherwise."""
    if signature.task == "multiclass":
        return np.empty((0, len(signature.classes)), dtype=np.float64)
    return np.empty(0, dtype=np.float64)


class ModelMethods:
    """The methods every Conveyor model shares on top of :meth:`predict_encoded`.

    ``predict`` gives class labels (binary, at ``threshold``) or values, ``predict_proba`` the
    two class probabilities of a binary model, ``save`` the safe JSON artifact, ``load`` the
    model back from it and ``size_bytes`` the artifact's size.
    """

    __slots__ = ()

    signature: Signature

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, matrix: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
        """Class codes (binary: 1 when the score >= ``threshold``; multiclass: the most probable
        class), values for regression. ``signature.labels.decode`` gives the class values."""
        scores = self.predict_encoded(matrix)
        if self.signature.task == "binary":
            return (scores >= threshold).astype(np.int64)
        if self.signature.task == "multiclass":
            return np.asarray(scores.argmax(axis=1), dtype=np.int64)
        return scores

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """``(n, k)`` class probabilities in ``signature.classes`` order (binary: negative,
        positive).

        Raises
        ------
        InvalidInputError
            If the model is a regression model.
        """
        if self.signature.task == "multiclass":
            return self.predict_encoded(matrix)
        if self.signature.task != "binary":
            raise InvalidInputError(
                "predict_proba() needs a classification model. Got a model of task "
                f"{self.signature.task!r} instead; use predict()."
            )
        p = self.predict_encoded(matrix)
        return np.column_stack([1.0 - p, p])

    def save(self, *, meta: Mapping[str, Any] | None = None) -> bytes:
        """The model's artifact; see :func:`save_model`."""
        return save_model(self, meta=meta)  # type: ignore[arg-type]

    @staticmethod
    def load(data: bytes) -> Predictor:
        """A model from its artifact; see :func:`load_model`."""
        return load_model(data)

    @property
    def size_bytes(self) -> int:
        """The size of the model's artifact in bytes, without meta."""
        return model_size_bytes(self)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, eq=False)
class LightGBMModel(ModelMethods):
    """A gradient-boosted tree model: a raw :class:`lightgbm.Booster` and its signature.

    Categorical inputs are category codes that the booster splits on natively; a missing or
    unseen category is ``nan`` and follows the booster's missing-value branch.

    Parameters
    ----------
    signature : Signature
        The inputs, in the column order of the encoded matrix.
    booster : lightgbm.Booster
        A booster trained with a ``binary`` objective (it predicts probabilities), a
        ``multiclass`` one (an ``(n, k)`` matrix of class probabilities) or a regression
        objective.
    """

    signature: Signature
    booster: lgb.Booster
    kind: str = field(default="lightgbm", init=False)

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """P(positive) per row for a binary task, ``(n, k)`` class probabilities for a
        multiclass one, the predicted value for regression."""
        arr = check_matrix(matrix, self.signature)
        if len(arr) == 0:
            return _empty(self.signature)
        return np.asarray(self.booster.predict(arr), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class XGBoostModel(ModelMethods):
    """A gradient-boosted tree model: a raw ``xgboost.Booster`` and its signature.

    The booster takes the encoded matrix; a ``binary:logistic`` objective predicts
    probabilities, ``multi:softprob`` an ``(n, k)`` matrix of them, a regression objective
    values.
    """

    signature: Signature
    booster: Any
    kind: str = field(default="xgboost", init=False)

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """P(positive) per row for a binary task, ``(n, k)`` class probabilities for a
        multiclass one, the predicted value for regression."""
        arr = check_matrix(matrix, self.signature)
        if len(arr) == 0:
            return _empty(self.signature)
        return np.asarray(self.booster.predict(xgboost().DMatrix(arr)), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class SklearnModel(ModelMethods):
    """A fitted scikit-learn estimator or pipeline that takes the encoded matrix.

    A binary classifier scores with ``predict_proba``'s last column (the positive class), a
    multiclass one (fitted on the class codes) with every column, anything else with ``predict``.
    """

    signature: Signature
    estimator: Any
    kind: str = field(default="sklearn", init=False)

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """P(positive) per row for a binary classifier, ``(n, k)`` class probabilities for a
        multiclass one (the estimator's ``classes_`` are the codes ``0..k-1``; a class it never
        saw gets probability 0), ``predict`` otherwise."""
        arr = check_matrix(matrix, self.signature)
        task = self.signature.task
        if task == "multiclass":
            return class_matrix(self.estimator, arr, len(self.signature.classes))
        if len(arr) == 0:
            return np.empty(0, dtype=np.float64)
        if task == "binary" and hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(arr)[:, -1], dtype=np.float64)
        if self.signature.task == "multiclass":  # fitted on codes: columns in classes order
            return np.asarray(self.estimator.predict_proba(arr), dtype=np.float64)
        return np.asarray(self.estimator.predict(arr), dtype=np.float64)


def class_matrix(estimator: Any, arr: np.ndarray, k: int) -> np.ndarray:
    """A scikit-learn classifier's ``predict_proba`` as ``(n, k)`` columns of codes ``0..k-1``.

    Raises
    ------
    InvalidInputError
        If the estimator has no ``predict_proba`` or its ``classes_`` are not codes below k.
    """
    out = np.zeros((len(arr), k), dtype=np.float64)
    classes = np.asarray(getattr(estimator, "classes_", np.arange(k)))
    if not hasattr(estimator, "predict_proba") or not np.isin(classes, np.arange(k)).all():
        raise InvalidInputError(
            f"A multiclass scikit-learn model must have predict_proba and classes_ among the "
            f"codes 0..{k - 1}. Got classes {classes.tolist()} of {type(estimator).__name__}."
        )
    if len(arr):
        out[:, classes.astype(np.int64)] = estimator.predict_proba(arr)
    return out


@dataclass(frozen=True, slots=True)
class PriorModel(ModelMethods):
    """The binary baseline: every row gets the positive rate seen in training."""

    signature: Signature
    positive_rate: float
    kind: str = field(default="prior", init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.positive_rate <= 1.0:
            raise InvalidInputError(
                "The 'positive_rate' of PriorModel must be a float in [0, 1]. "
                f"Got {self.positive_rate!r} instead."
            )

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """The training positive rate, once per row."""
        return np.full(len(check_matrix(matrix, self.signature)), self.positive_rate)


@dataclass(frozen=True, slots=True)
class ClassPriorModel(ModelMethods):
    """The multiclass baseline: every row gets the class frequencies seen in training."""

    signature: Signature
    rates: tuple[float, ...]
    kind: str = field(default="class_prior", init=False)

    def __post_init__(self) -> None:
        k = len(self.signature.classes)
        rates = np.asarray(self.rates, dtype=np.float64)
        if len(rates) != k or not np.isfinite(rates).all() or (rates < 0).any():
            raise InvalidInputError(
                f"The 'rates' of ClassPriorModel must be {k} non-negative floats, one per class "
                f"of the signature. Got {list(self.rates)!r} instead."
            )
        if not math.isclose(float(rates.sum()), 1.0, abs_tol=1e-6):
            raise InvalidInputError(
                f"The 'rates' of ClassPriorModel must sum to 1. Got {float(rates.sum())!r}."
            )

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """The training class frequencies, once per row: an ``(n, k)`` matrix."""
        n = len(check_matrix(matrix, self.signature))
        return np.tile(np.asarray(self.rates, dtype=np.float64), (n, 1))


@dataclass(frozen=True, slots=True)
class MeanModel(ModelMethods):
    """The regression baseline: every row gets the mean label seen in training."""

    signature: Signature
    mean: float
    kind: str = field(default="mean", init=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean):
            raise InvalidInputError(
                f"The 'mean' of MeanModel must be a finite float. Got {self.mean!r} instead."
            )

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """The training mean, once per row."""
        return np.full(len(check_matrix(matrix, self.signature)), self.mean)


@dataclass(frozen=True, slots=True)
class MedianModel(ModelMethods):
    """A regression baseline robust to outliers: every row gets the training median label."""

    signature: Signature
    median: float
    kind: str = field(default="median", init=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.median):
            raise InvalidInputError(
                f"The 'median' of MedianModel must be a finite float. Got {self.median!r} instead."
            )

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """The training median, once per row."""
        return np.full(len(check_matrix(matrix, self.signature)), self.median)


ENSEMBLE_LINKS = ("identity", "logit")


@dataclass(frozen=True, slots=True, eq=False)
class EnsembleModel(ModelMethods):
    """A weighted combination of member models that share one signature.

    The score is ``link_inverse(intercept + sum_i weights[i] * link(member_i))``: with the
    ``identity`` link and weights summing to 1 this is an average of the members (averaging
    ensemble; for a multiclass task an average of their probability matrices); with the
    ``logit`` link and weights fitted by a logistic regression on the members' validation
    scores it is a stacked ensemble of binary models.
    """

    signature: Signature
    members: tuple[Predictor, ...]
    weights: tuple[float, ...]
    intercept: float = 0.0
    link: str = "identity"
    kind: str = field(default="ensemble", init=False)

    def __post_init__(self) -> None:
        if not self.members or len(self.members) != len(self.weights):
            raise InvalidInputError(
                "An EnsembleModel needs at least one member and one weight per member. Got "
                f"{len(self.members)} members and {len(self.weights)} weights instead."
            )
        if self.link not in ENSEMBLE_LINKS:
            raise InvalidInputError(
                f"The 'link' of EnsembleModel must be one of {list(ENSEMBLE_LINKS)}. "
                f"Got {self.link!r} instead."
            )
        if self.link == "logit" and self.signature.task != "binary":
            raise InvalidInputError("The 'logit' link of EnsembleModel needs a binary task.")
        if not all(math.isfinite(w) for w in (*self.weights, self.intercept)):
            raise InvalidInputError("The weights and intercept of EnsembleModel must be finite.")
        for member in self.members:
            if member.signature != self.signature:
                raise InvalidInputError(
                    "Every member of an EnsembleModel must have the ensemble's signature. "
                    f"Got a {member.kind} member with another signature."
                )

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """The combined score per row."""
        arr = check_matrix(matrix, self.signature)
        # A multiclass member scores an (n, k) matrix; the sum broadcasts over its columns.
        total: np.ndarray = np.asarray(self.intercept, dtype=np.float64)
        for member, weight in zip(self.members, self.weights, strict=True):
            total = total + weight * ensemble_link(member.predict_encoded(arr), self.link)
        if total.ndim == 0:
            total = np.full(len(arr), float(total))
        if self.link == "logit":
            return np.asarray(1.0 / (1.0 + np.exp(-total)), dtype=np.float64)
        return total


def ensemble_link(scores: np.ndarray, link: str) -> np.ndarray:
    """Member scores on the scale an :class:`EnsembleModel` combines them (logit is clipped)."""
    if link == "logit":
        p = np.clip(scores, 1e-6, 1 - 1e-6)
        return np.asarray(np.log(p / (1 - p)), dtype=np.float64)
    return np.asarray(scores, dtype=np.float64)


def _lightgbm_payload(model: Any) -> Any:
    return model.booster.model_to_string()


def _lightgbm_from(signature: Signature, payload: Any) -> Predictor:
    if not isinstance(payload, str):
        raise InvalidInputError(
            f"A lightgbm model payload must be a LightGBM text model. Got {type(payload).__name__}"
            " instead."
        )
    try:
        booster = lightgbm().Booster(model_str=payload)
    except lightgbm().basic.LightGBMError as exc:
        raise InvalidInputError(f"The lightgbm model payload does not parse: {exc}") from exc
    if booster.num_feature() != len(signature.inputs):
        raise InvalidInputError(
            f"The lightgbm model takes {booster.num_feature()} features but its signature has "
            f"{len(signature.inputs)} inputs."
        )
    return LightGBMModel(signature=signature, booster=booster)


def _xgboost_from(signature: Signature, payload: Any) -> Predictor:
    if not isinstance(payload, str):
        raise InvalidInputError(
            f"An xgboost model payload must be an XGBoost JSON model. Got {type(payload).__name__}"
            " instead."
        )
    booster = load_xgboost(payload.encode("utf-8"))
    if booster.num_features() != len(signature.inputs):
        raise InvalidInputError(
            f"The xgboost model takes {booster.num_features()} features but its signature has "
            f"{len(signature.inputs)} inputs."
        )
    return XGBoostModel(signature=signature, booster=booster)


def _sklearn_from(signature: Signature, payload: Any) -> Predictor:
    try:
        data = base64.b64decode(str(payload.get("skops")), validate=True)
    except (AttributeError, binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            "A sklearn model payload must be {'skops': <base64 skops file>}. "
            f"Got {type(payload).__name__} instead."
        ) from exc
    return SklearnModel(signature=signature, estimator=load_sklearn(data))


def _onnx_from(signature: Signature, payload: Any) -> Predictor:
    try:
        data = base64.b64decode(str(payload.get("onnx")), validate=True)
    except (AttributeError, binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            "An onnx model payload must be {'onnx': <base64 ONNX model>}. "
            f"Got {type(payload).__name__} instead."
        ) from exc
    return onnx_model(signature, data)


def _constant_from(kind: str, key: str) -> Callable[[Signature, Any], Predictor]:
    def build(signature: Signature, payload: Any) -> Predictor:
        value = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(
                f"A {kind} model payload must be {{{key!r}: <number>}}. Got {payload!r} instead."
            )
        model: Predictor
        if kind == "prior":
            model = PriorModel(signature=signature, positive_rate=float(value))
        elif kind == "median":
            model = MedianModel(signature=signature, median=float(value))
        else:
            model = MeanModel(signature=signature, mean=float(value))
        return model

    return build


# kind -> (payload of a model, model from a signature and a payload)
_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Signature, Any], Predictor]]] = {
    "lightgbm": (_lightgbm_payload, _lightgbm_from),
    "xgboost": (lambda m: dump_xgboost(m.booster).decode("utf-8"), _xgboost_from),
    "sklearn": (
        lambda m: {"skops": base64.b64encode(dump_sklearn(m.estimator)).decode("ascii")},
        _sklearn_from,
    ),
    "onnx": (
        lambda m: {"onnx": base64.b64encode(m.model_bytes).decode("ascii")},
        _onnx_from,
    ),
    "prior": (
        lambda m: {"positive_rate": m.positive_rate},
        _constant_from("prior", "positive_rate"),
    ),
    "class_prior": (lambda m: {"rates": list(m.rates)}, lambda s, p: _class_prior_from(s, p)),
    "mean": (lambda m: {"mean": m.mean}, _constant_from("mean", "mean")),
    "median": (lambda m: {"median": m.median}, _constant_from("median", "median")),
    "ensemble": (lambda m: _ensemble_payload(m), lambda s, p: _ensemble_from(s, p)),
}


def _class_prior_from(signature: Signature, payload: Any) -> Predictor:
    rates = payload.get("rates") if isinstance(payload, dict) else None
    if not isinstance(rates, list) or not all(
        isinstance(r, int | float) and not isinstance(r, bool) for r in rates
    ):
        raise InvalidInputError(
            f"A class_prior model payload must be {{'rates': [<number>, ...]}}. Got {payload!r}."
        )
    return ClassPriorModel(signature=signature, rates=tuple(float(r) for r in rates))


def _ensemble_payload(model: EnsembleModel) -> dict[str, Any]:
    members = []
    for member in model.members:
        if member.kind not in _CODECS or member.kind == "ensemble":
            raise InvalidInputError(
                f"An ensemble member must be a non-ensemble model of a kind in {sorted(_CODECS)}. "
                f"Got {member.kind!r} instead."
            )
        members.append({"kind": member.kind, "payload": _CODECS[member.kind][0](member)})
    return {
        "members": members,
        "weights": list(model.weights),
        "intercept": model.intercept,
        "link": model.link,
    }


def _ensemble_from(signature: Signature, payload: Any) -> Predictor:
    try:
        items = list(payload["members"])
        weights = tuple(float(w) for w in payload["weights"])
        intercept = float(payload.get("intercept", 0.0))
        link = str(payload.get("link", "identity"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(
            "An ensemble model payload must be {'members': [...], 'weights': [...], "
            f"'intercept', 'link'}}. Got a malformed payload ({exc!r})."
        ) from exc
    members = []
    for item in items:
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in _CODECS or kind == "ensemble":
            raise InvalidInputError(
                f"An ensemble member kind must be a non-ensemble kind in {sorted(_CODECS)}. "
                f"Got {kind!r} instead."
            )
        members.append(_CODECS[kind][1](signature, item.get("payload")))
    return EnsembleModel(
        signature=signature,
        members=tuple(members),
        weights=weights,
        intercept=intercept,
        link=link,
    )


def save_model(model: Predictor, *, meta: Mapping[str, Any] | None = None) -> bytes:
    """Serialise ``model`` into a self-describing JSON artifact.

    Parameters
    ----------
    model : Predictor
        A :class:`LightGBMModel`, :class:`XGBoostModel`, :class:`SklearnModel`,
        :class:`~conveyor.training.onnx_format.OnnxModel`, :class:`PriorModel` or
        :class:`MeanModel`.
    meta : mapping, optional
        JSON-ready facts kept next to the model (metrics, lineage). Non-finite floats are
        written as ``null`` so the document stays standard JSON.

    Returns
    -------
    bytes
        UTF-8 JSON: ``{"format", "kind", "signature", "meta", "payload"}``.

    Raises
    ------
    InvalidInputError
        If the model's kind has no safe format or ``meta`` is not JSON-ready.

    Examples
    --------
    >>> from conveyor.core.schema import ColumnKind, ColumnSchema
    >>> sig = Signature(inputs=(ColumnSchema("x", ColumnKind.NUMERIC),))
    >>> load_model(save_model(PriorModel(sig, 0.25))).predict_encoded(np.zeros((2, 1)))
    array([0.25, 0.25])
    """
    if model.kind not in _CODECS:
        raise InvalidInputError(
            f"The model kind must be one of {sorted(_CODECS)}. Got {model.kind!r} instead."
        )
    document = {
        "format": MODEL_FORMAT,
        "kind": model.kind,
        "signature": model.signature.to_dict(),
        "meta": _finite_json(dict(meta or {})),
        "payload": _CODECS[model.kind][0](model),
    }
    try:
        return json.dumps(document, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"The model meta must be JSON-ready: {exc}") from exc


def load_model(
    data: bytes, *, trusted: bool = False, expected_sha256: str | None = None
) -> Predictor:
    """Rebuild a model from an artifact written by :func:`save_model`.

    Parameters
    ----------
    data : bytes
        The artifact. Registry loads read it through the artifact store, which checks it
        against the digest recorded at registration.
    trusted : bool, default False
        Only for a pickled :class:`~conveyor.core.model.Predictor`: the caller trusts its
        source. Pickle runs code on load, so it is refused unless ``trusted`` is True and
        ``expected_sha256`` matches.
    expected_sha256 : str, optional
        ``sha256:<hex>`` the bytes must hash to. Checked for every artifact when given.

    Raises
    ------
    InvalidInputError
        If ``data`` does not hash to ``expected_sha256``; if it is not a JSON object and not a
        trusted, hash-checked pickle; if it carries another format tag, names an unknown kind,
        its signature or payload is malformed, or a skops payload names an untrusted type.
    """
    data = bytes(data)
    if expected_sha256 is not None:
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if actual != f"sha256:{expected_sha256.removeprefix('sha256:').lower()}":
            raise InvalidInputError(
                f"The model artifact must hash to {expected_sha256!r}. Got {actual} instead."
            )
    if data.lstrip()[:1] not in (b"{", b"["):
        if not trusted:
            raise InvalidInputError(
                f"A model artifact must be a UTF-8 JSON document in format {MODEL_FORMAT!r}; other "
                "bytes (such as a pickle) load only with trusted=True and expected_sha256. Got "
                f"bytes starting {data[:8]!r} with trusted=False instead."
            )
        return _trusted_pickle(data, expected_sha256)
    document = _read_document(data)
    kind = document.get("kind")
    if kind not in _CODECS:
        raise InvalidInputError(
            f"The model artifact kind must be one of {sorted(_CODECS)}. Got {kind!r} instead."
        )
    try:
        signature = Signature.from_dict(document["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"The model artifact signature is malformed: {exc!r}") from exc
    return _CODECS[kind][1](signature, document.get("payload"))


def _trusted_pickle(data: bytes, expected_sha256: str | None) -> Predictor:
    model = load_pickle(data, trusted=True, expected_sha256=expected_sha256)
    if not callable(getattr(model, "predict_encoded", None)) or not isinstance(
        getattr(model, "signature", None), Signature
    ):
        raise InvalidInputError(
            "A trusted pickled model must be a Predictor (a signature and predict_encoded). "
            f"Got {type(model).__name__} instead."
        )
    return model  # type: ignore[no-any-return]


def read_model_meta(data: bytes) -> dict[str, Any]:
    """The ``meta`` mapping stored in an artifact, without building the model.

    Raises
    ------
    InvalidInputError
        As :func:`load_model` for a document that is not a Conveyor model artifact.
    """
    meta = _read_document(data).get("meta") or {}
    if not isinstance(meta, dict):
        raise InvalidInputError(
            f"The model artifact meta must be a JSON object. Got {type(meta).__name__} instead."
        )
    return meta


def model_size_bytes(model: Predictor) -> int:
    """The size of ``model``'s artifact in bytes, without ``meta``."""
    return len(save_model(model))


def _read_document(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"A model artifact must be a UTF-8 JSON document in format {MODEL_FORMAT!r}. "
            f"Got undecodable bytes instead ({exc})."
        ) from exc
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        tag = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise InvalidInputError(
            f"A model artifact must have format {MODEL_FORMAT!r}. Got {tag!r} instead."
        )
    return document


def _finite_json(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    return value
