"""Safe byte formats for third-party models: nothing a stored artifact says can run code on load.

* scikit-learn estimators are stored with skops and loaded with ``trusted=`` set to the types
  skops trusts by default plus :data:`SKOPS_ALLOWLIST`, a list kept in this module and never read
  from the artifact. A file naming any other type is refused before anything is built.
* XGBoost boosters are stored in XGBoost's own JSON model format and loaded into a fresh
  ``xgboost.Booster``.
* LightGBM boosters are stored in LightGBM's text model format.
* pickle is loaded only when the caller says ``trusted=True`` *and* supplies the sha256 the bytes
  must have; anything else is refused without unpickling a byte.

xgboost is optional (``pip install conveyor-ml[xgboost]``); it and skops (a dependency, since
the linear baseline is a scikit-learn pipeline) are imported on first use.
"""

from __future__ import annotations

import hashlib
import pickle
from types import ModuleType
from typing import Any, cast

from conveyor.core.errors import ConfigError, InvalidInputError

#: Types trusted on top of skops' own defaults (scikit-learn estimators, numpy and builtin
#: containers): the fitted state of tree models and pipelines. Kept in code on purpose: an
#: artifact can never widen it.
SKOPS_ALLOWLIST: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def xgboost() -> ModuleType:
    """XGBoost, imported on first use.

    Raises
    ------
    ConfigError
        If xgboost is not installed.
    """
    try:
        import xgboost as xgb  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "XGBoost models need the xgboost package: pip install 'conveyor-ml[xgboost]'."
        ) from exc
    return xgb


def skops_io() -> ModuleType:
    """``skops.io``, imported on first use.

    Raises
    ------
    ConfigError
        If skops is not installed.
    """
    try:
        import skops.io as sio  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "scikit-learn models need the skops package: pip install 'conveyor-ml[sklearn]'."
        ) from exc
    return cast(ModuleType, sio)


def dump_sklearn(estimator: Any) -> bytes:
    """Serialise a scikit-learn estimator (or pipeline) in the skops format."""
    data: bytes = skops_io().dumps(estimator)
    return data


def untrusted_sklearn_types(data: bytes) -> list[str]:
    """The types a skops file names that neither skops nor :data:`SKOPS_ALLOWLIST` trusts.

    Raises
    ------
    InvalidInputError
        If ``data`` is not a skops file.
    """
    sio = skops_io()
    try:
        named: list[str] = sio.get_untrusted_types(data=bytes(data))
    except Exception as exc:  # skops raises zipfile, json and key errors on garbage
        raise InvalidInputError(
            f"A scikit-learn model artifact must be a skops file. Got bytes that are not ({exc})."
        ) from exc
    return sorted(set(named) - set(SKOPS_ALLOWLIST))


def load_sklearn(data: bytes) -> Any:
    """Rebuild an estimator from skops bytes, trusting only skops' defaults and the allowlist.

    Raises
    ------
    InvalidInputError
        If ``data`` is not a skops file, or names a type outside the allowlist (the message
        lists them); nothing in the file is built in that case.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> type(load_sklearn(dump_sklearn(model))).__name__
    'LogisticRegression'
    """
    untrusted = untrusted_sklearn_types(data)
    if untrusted:
        raise InvalidInputError(
            f"The scikit-learn model artifact names types Conveyor does not trust: {untrusted}. "
            f"Allowed are skops' defaults and {list(SKOPS_ALLOWLIST)}."
        )
    try:
        return skops_io().loads(bytes(data), trusted=list(SKOPS_ALLOWLIST))
    except Exception as exc:  # skops wraps builder failures in many types
        raise InvalidInputError(f"The scikit-learn model artifact does not load: {exc}") from exc


def dump_xgboost(model: Any) -> bytes:
    """Serialise an ``xgboost.Booster`` (or a fitted ``XGBModel``) as XGBoost JSON."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    return bytes(booster.save_raw(raw_format="json"))


def load_xgboost(data: bytes) -> Any:
    """Load an ``xgboost.Booster`` from XGBoost JSON (or UBJSON) bytes.

    Raises
    ------
    InvalidInputError
        If XGBoost cannot parse ``data``.
    """
    xgb = xgboost()
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise InvalidInputError(
            f"The xgboost model artifact is not an XGBoost JSON or UBJ model: {exc}"
        ) from exc
    return booster


def load_pickle(data: bytes, *, trusted: bool = False, expected_sha256: str | None = None) -> Any:
    """Unpickle ``data`` only for a caller who trusts it and knows its sha256.

    Parameters
    ----------
    data : bytes
        The pickle stream.
    trusted : bool, default False
        The caller's statement that the bytes come from a source it trusts.
    expected_sha256 : str, optional
        ``sha256:<hex>`` or ``<hex>``: the digest the bytes must have.

    Raises
    ------
    InvalidInputError
        If ``trusted`` is not True, no digest is given, or the bytes hash to another digest;
        nothing is unpickled then.
    """
    if trusted is not True or not expected_sha256:
        raise InvalidInputError(
            "A pickled model runs code when loaded, so it is loaded only with trusted=True and "
            f"expected_sha256='sha256:<hex>'. Got trusted={trusted!r}, "
            f"expected_sha256={expected_sha256!r} instead."
        )
    actual = hashlib.sha256(data).hexdigest()
    expected = str(expected_sha256).removeprefix("sha256:").lower()
    if actual != expected:
        raise InvalidInputError(
            f"The pickled model's sha256 must be {expected!r}. Got sha256:{actual} instead; "
            "it was not loaded."
        )
    return pickle.loads(data)  # noqa: S301 - trusted by the caller and hash-checked above
