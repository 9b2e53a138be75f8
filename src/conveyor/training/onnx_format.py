"""ONNX as a safe model format: a graph of standard operators, run by onnxruntime.

An ONNX file is data (a protobuf graph), not code, as long as it uses only the standard
operator domains and carries its weights inline. :func:`load_onnx_session` checks both before
onnxruntime sees the bytes: a node or opset in any other domain (a custom op) and a tensor
stored in an external data file are refused. The session runs on the CPU provider with one
intra-op thread by default, so a serving worker does not oversubscribe its cores.

:func:`sklearn_to_onnx` converts a fitted scikit-learn estimator with skl2onnx, with zipmap
disabled so a classifier's probabilities come out as an ``(n, n_classes)`` tensor;
:func:`onnx_model_from_sklearn` wraps the result as an :class:`OnnxModel`, the Predictor that
:func:`conveyor.training.models.save_model` stores with kind ``"onnx"``.

onnxruntime, onnx and skl2onnx are optional (``pip install 'conveyor-ml[onnx]'``) and imported
on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np

from conveyor.core.errors import ConfigError, InvalidInputError
from conveyor.core.signature import Signature

#: The operator domains a graph may use: the ONNX standard ops ("" and "ai.onnx") and the
#: standard ML ops that scikit-learn converters emit. Kept in code: an artifact cannot widen it.
ONNX_ALLOWED_DOMAINS: frozenset[str] = frozenset({"", "ai.onnx", "ai.onnx.ml"})

_INPUT_DTYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
}


def onnx_modules() -> tuple[ModuleType, ModuleType]:
    """``onnx`` and ``onnxruntime``, imported on first use.

    Raises
    ------
    ConfigError
        If either is not installed.
    """
    try:
        import onnx  # noqa: PLC0415
        import onnxruntime  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "ONNX models need the onnx and onnxruntime packages: pip install 'conveyor-ml[onnx]'."
        ) from exc
    return onnx, onnxruntime


@dataclass(frozen=True, slots=True, eq=False)
class OnnxSession:
    """A checked onnxruntime session and the names it is run with.

    ``output_shape`` is ``"tensor"`` for a float tensor output and ``"zipmap"`` for a sequence
    of ``{class: probability}`` maps (skl2onnx with zipmap on).
    """

    session: Any
    input_name: str
    input_dtype: type[np.floating[Any]]
    output_name: str
    output_shape: Literal["tensor", "zipmap"]


def _graphs(graph: Any) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
            for sparse in attr.sparse_tensors:
                yield from (sparse.values, sparse.indices)


def check_onnx_graph(data: bytes) -> Any:
    """Parse ``data`` as an ONNX model and refuse what could reach outside the bytes.

    Returns
    -------
    onnx.ModelProto
        The parsed model.

    Raises
    ------
    InvalidInputError
        If ``data`` is not an ONNX model, imports an opset or has a node outside
        :data:`ONNX_ALLOWED_DOMAINS` (a custom op), defines local functions, or stores a
        tensor in an external data file.
    """
    onnx, _ = onnx_modules()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(data))
    except Exception as exc:  # protobuf raises DecodeError and RuntimeWarning-like errors
        raise InvalidInputError(
            f"An onnx model payload must be an ONNX protobuf model. Got bytes that are not ({exc})."
        ) from exc
    if not model.HasField("graph"):
        raise InvalidInputError(
            "An onnx model payload must be an ONNX model with a graph. Got bytes with no graph."
        )
    domains = {op.domain for op in model.opset_import}
    domains |= {node.domain for g in _graphs(model.graph) for node in g.node}
    if model.functions:
        domains |= {f.domain for f in model.functions}
    custom = sorted(domains - ONNX_ALLOWED_DOMAINS)
    if custom:
        raise InvalidInputError(
            f"The onnx model uses operator domains Conveyor does not run: {custom}. Allowed are "
            f"{sorted(ONNX_ALLOWED_DOMAINS)} (no custom ops)."
        )
    external = sorted(
        t.name or "<unnamed>"
        for g in _graphs(model.graph)
        for t in _tensors(g)
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) > 0
    )
    if external:
        raise InvalidInputError(
            f"The onnx model stores tensors {external} in external data files. Conveyor loads "
            "only self-contained models: save with all tensors inline."
        )
    return model


def load_onnx_session(data: bytes, *, n_features: int, intra_op_threads: int = 1) -> OnnxSession:
    """Check ``data`` with :func:`check_onnx_graph` and open it in onnxruntime on the CPU.

    Parameters
    ----------
    data : bytes
        A serialised ONNX model.
    n_features : int
        The number of columns of the matrix the model is run on.
    intra_op_threads : int, default 1
        onnxruntime's intra-op thread pool size (inter-op is always 1).

    Raises
    ------
    InvalidInputError
        If the graph is refused by :func:`check_onnx_graph` or by onnxruntime, does not have
        exactly one float/double input of width ``n_features``, or has no float output.
    """
    check_onnx_graph(data)
    _, ort = onnx_modules()
    if intra_op_threads < 1:
        raise InvalidInputError(
            f"intra_op_threads must be an int >= 1. Got {intra_op_threads!r} instead."
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            bytes(data), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Exception subclasses
        raise InvalidInputError(f"onnxruntime refused the onnx model: {exc}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in _INPUT_DTYPES:
        got = [(i.name, i.type) for i in inputs]
        raise InvalidInputError(
            "An onnx model must have exactly one input of type tensor(float) or tensor(double). "
            f"Got {got} instead."
        )
    shape = list(inputs[0].shape)
    width = shape[-1] if len(shape) == 2 else None
    if len(shape) != 2 or (isinstance(width, int) and width != n_features):
        raise InvalidInputError(
            f"The onnx model input must have shape [n, {n_features}] (one column per signature "
            f"input). Got {shape} instead."
        )
    name, kind = _pick_output(session.get_outputs())
    return OnnxSession(
        session=session,
        input_name=inputs[0].name,
        input_dtype=_INPUT_DTYPES[inputs[0].type],
        output_name=name,
        output_shape=kind,
    )


def _pick_output(outputs: list[Any]) -> tuple[str, Literal["tensor", "zipmap"]]:
    """The probability (or value) output: a zipmap sequence, else the last float tensor."""
    for out in outputs:
        if out.type.startswith("seq(map("):
            return out.name, "zipmap"
    floats = [o for o in outputs if o.type in _INPUT_DTYPES]
    if not floats:
        raise InvalidInputError(
            "An onnx model must have a float output (probabilities or values). Got "
            f"{[(o.name, o.type) for o in outputs]} instead."
        )
    return floats[-1].name, "tensor"


def run_onnx(model: OnnxSession, matrix: np.ndarray, *, task: str) -> np.ndarray:
    """Run ``model`` on a 2-D matrix: P(positive) for ``task="binary"``, the ``(n, k)`` class
    probabilities for ``"multiclass"``, the value otherwise.

    The positive class is the last column of a probability tensor (the last of the sorted
    classes, as scikit-learn's ``predict_proba[:, -1]``) or the largest key of a zipmap.

    Raises
    ------
    InvalidInputError
        If the output does not have one column (or two for a binary probability).
    """
    feed = {model.input_name: np.ascontiguousarray(matrix, dtype=model.input_dtype)}
    (out,) = model.session.run([model.output_name], feed)
    if task == "multiclass":
        return _class_probabilities(model, out, len(matrix))
    if model.output_shape == "zipmap":
        if not out:
            return np.empty(0, dtype=np.float64)
        positive = sorted(out[0])[-1]
        return np.asarray([row[positive] for row in out], dtype=np.float64)
    arr = np.asarray(out, dtype=np.float64).reshape(len(matrix), -1)
    allowed = "1 or 2 columns" if task == "binary" else "1 column"
    if arr.shape[1] > (2 if task == "binary" else 1):
        raise InvalidInputError(
            f"The onnx model output {model.output_name!r} must have {allowed} for a {task} "
            f"task. Got shape {arr.shape} instead."
        )
    return arr[:, -1]


def _class_probabilities(model: OnnxSession, out: Any, n: int) -> np.ndarray:
    """A multiclass output as ``(n, k)``: a zipmap's classes in sorted order, else the tensor."""
    if model.output_shape == "zipmap":
        keys = sorted(out[0]) if n else []
        arr = np.asarray([[row[key] for key in keys] for row in out], dtype=np.float64)
    else:
        arr = np.asarray(out, dtype=np.float64).reshape(n, -1)
    if arr.ndim != 2 or (n and arr.shape[1] < 2):
        raise InvalidInputError(
            f"The onnx model output {model.output_name!r} must have one probability column per "
            f"class for a multiclass task. Got shape {arr.shape} instead."
        )
    return arr


def sklearn_to_onnx(
    estimator: Any, *, n_features: int, dtype: Literal["float64", "float32"] = "float64"
) -> bytes:
    """Convert a fitted scikit-learn estimator (or pipeline) to ONNX bytes with skl2onnx.

    The input is ``"input"`` of shape ``[None, n_features]``; a classifier is converted with
    zipmap disabled. ``float64`` keeps scikit-learn's arithmetic; ``float32`` is more widely
    supported by other runtimes but may move tree splits on values near a threshold.

    Raises
    ------
    ConfigError
        If skl2onnx is not installed.
    InvalidInputError
        If skl2onnx cannot convert the estimator.
    """
    try:
        from skl2onnx import to_onnx  # noqa: PLC0415
        from skl2onnx.common.data_types import (  # noqa: PLC0415
            DoubleTensorType,
            FloatTensorType,
        )
    except ImportError as exc:
        raise ConfigError(
            "Converting to ONNX needs the skl2onnx package: pip install 'conveyor-ml[onnx]'."
        ) from exc
    tensor = DoubleTensorType if dtype == "float64" else FloatTensorType
    options = {"zipmap": False} if hasattr(estimator, "predict_proba") else None
    try:
        proto = to_onnx(
            estimator, initial_types=[("input", tensor([None, n_features]))], options=options
        )
    except Exception as exc:  # skl2onnx raises many types for unsupported models
        raise InvalidInputError(
            f"skl2onnx cannot convert {type(estimator).__name__} to ONNX: {exc}"
        ) from exc
    return bytes(proto.SerializeToString())


@dataclass(frozen=True, slots=True, eq=False)
class OnnxModel:
    """An ONNX graph run by onnxruntime on the encoded matrix, a
    :class:`conveyor.core.model.Predictor` stored with kind ``"onnx"``.

    Build one with :func:`onnx_model` (from ONNX bytes) or :func:`onnx_model_from_sklearn`.
    A binary model's output is its probability tensor's last column (or a zipmap's largest
    class); a multiclass model's output is its whole probability tensor (or the zipmap's
    classes in sorted order), one column per class code; a regression model's output is its
    single value column.
    """

    signature: Signature
    model_bytes: bytes
    runner: OnnxSession
    kind: str = field(default="onnx", init=False)

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        """P(positive) per row for a binary task, ``(n, k)`` class probabilities for a
        multiclass one, the predicted value for regression."""
        arr = np.asarray(matrix, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(self.signature.inputs):
            raise InvalidInputError(
                f"The encoded matrix must have shape (n, {len(self.signature.inputs)}), one "
                f"column per signature input. Got shape {arr.shape} instead."
            )
        if len(arr) == 0:
            k = len(self.signature.classes)
            return np.empty((0, k) if self.signature.task == "multiclass" else 0)
        return run_onnx(self.runner, arr, task=self.signature.task)


def onnx_model(signature: Signature, data: bytes, *, intra_op_threads: int = 1) -> OnnxModel:
    """An :class:`OnnxModel` from serialised ONNX bytes.

    Raises
    ------
    InvalidInputError
        If the bytes are not a self-contained ONNX model of standard operators taking one
        float matrix with a column per signature input.
    """
    runner = load_onnx_session(
        data, n_features=len(signature.inputs), intra_op_threads=intra_op_threads
    )
    return OnnxModel(signature=signature, model_bytes=bytes(data), runner=runner)


def onnx_model_from_sklearn(
    estimator: Any, signature: Signature, *, dtype: Literal["float64", "float32"] = "float64"
) -> OnnxModel:
    """Convert a fitted scikit-learn estimator that takes the encoded matrix to an ONNX model.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from conveyor.core.schema import ColumnKind, ColumnSchema
    >>> sig = Signature(inputs=(ColumnSchema("x", ColumnKind.NUMERIC),))
    >>> clf = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> onnx_model_from_sklearn(clf, sig).predict_encoded(np.array([[1.0]])).round(3)
    array([0.555])
    """
    data = sklearn_to_onnx(estimator, n_features=len(signature.inputs), dtype=dtype)
    return onnx_model(signature, data)
