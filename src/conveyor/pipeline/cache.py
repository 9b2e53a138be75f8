"""Step caching: a cycle's step is keyed by the hash of its inputs, so a re-run resumes.

A key covers what determines the step's result: the dataset version ids it reads, the spec
sections that configure it and the code version (Conveyor's version and the project's git
revision). A step whose key is cached is not run again; its stored result is reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

import orjson

from conveyor.store.base import PipelineStore
from conveyor.training.service import code_revision


@lru_cache(maxsize=1)
def code_version() -> str:
    """Conveyor's version and the git revision of the working directory, if any."""
    try:
        package = metadata.version("conveyor-ml")
    except metadata.PackageNotFoundError:
        package = "unknown"
    return f"conveyor-ml=={package}@{code_revision() or 'no-git'}"


def step_key(step: str, inputs: Mapping[str, Any]) -> str:
    """The cache key of ``step`` run on ``inputs`` by this code version."""
    payload = {"step": step, "inputs": dict(inputs), "code": code_version()}
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    return f"{step}:{hashlib.sha256(body).hexdigest()}"


def cached_step(
    store: PipelineStore,
    key: str,
    run: Callable[[], Mapping[str, Any]],
    *,
    valid: Callable[[Mapping[str, Any]], bool] = lambda _r: True,
) -> tuple[dict[str, Any], bool]:
    """The step's result and whether it came from the cache.

    A cached result that ``valid`` rejects (e.g. its model version was deleted) is recomputed.
    """
    found = store.get_cached_step(key)
    if found is not None and valid(found):
        return dict(found), True
    result = dict(run())
    store.put_cached_step(key, result)
    return result, False
