"""The gate's infra check: serve the candidate through the real online app before any alias moves.

The candidate version is put in a :class:`~conveyor.serving.slot.ModelSlot` of the same
:func:`~conveyor.serving.app.create_serving_app` the online server runs, started with its
lifespan (the slot's watcher loads and warms the model exactly as in production) and spoken to
in-process over HTTP with httpx's ASGI transport. The version's stored sample requests are
replayed one row per request, then all at once; the check passes when every answer comes from
the candidate, every served score equals the offline score of the same record, and the p99 of
the single-row requests is within the latency budget. Its predictions go to a throwaway log,
never to the project's prediction log.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import orjson
import pandas as pd

from conveyor.core.errors import GateRejectedError, InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.signature import encode_frame
from conveyor.registry.service import get_version
from conveyor.serving.app import ModelSlot, create_serving_app
from conveyor.serving.outputs import read_outputs
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.validation import ServingLimits
from conveyor.spec import ProjectSpec, ServingSpec
from conveyor.training.models import load_model
from conveyor.workspace import Workspace

#: Single-row requests timed at least (the sample requests are cycled to reach it).
MIN_TIMED_REQUESTS = 100
READY_TIMEOUT_S = 30.0
#: Scores of one record in a batch and alone may differ by float rounding only.
_SAME_SCORE = 1e-9


@dataclass(frozen=True, slots=True)
class InfraCheck:
    """What replaying sample requests against the served candidate showed."""

    passed: bool
    version: int
    records: int
    requests: int
    max_abs_diff: float
    p50_ms: float
    p99_ms: float
    budget_ms: float | None
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "version": self.version,
            "records": self.records,
            "requests": self.requests,
            "max_abs_diff": self.max_abs_diff if math.isfinite(self.max_abs_diff) else None,
            "p50_ms": self.p50_ms if math.isfinite(self.p50_ms) else None,
            "p99_ms": self.p99_ms if math.isfinite(self.p99_ms) else None,
            "budget_ms": self.budget_ms,
            "problems": list(self.problems),
        }


def check_serving(
    spec: ProjectSpec,
    version: int,
    predictor: Predictor,
    records: Sequence[Mapping[str, Any]],
    *,
    budget_ms: float | None = None,
    tolerance: float = 1e-6,
) -> InfraCheck:
    """Serve ``predictor`` as ``version`` in the online app and replay ``records`` against it.

    Parameters
    ----------
    spec : ProjectSpec
        Its serving settings (limits, threshold) configure the app as in production.
    version : int
        The candidate's version, which every answer must carry.
    predictor : Predictor
        The candidate, loaded as the server loads it.
    records : sequence of mapping
        JSON request records (the version's stored sample requests).
    budget_ms : float, optional
        Largest allowed p99 latency of a single-row request; ``None`` records it only.
    tolerance : float
        Largest allowed difference between a served and an offline score.

    Returns
    -------
    InfraCheck

    Raises
    ------
    InvalidInputError
        If there are no records to replay.
    """
    return replay_served(
        version,
        predictor,
        records,
        project=spec.project,
        model_name=spec.model_name,
        serving=spec.serving,
        budget_ms=budget_ms,
        tolerance=tolerance,
    )


def replay_served(
    version: int,
    predictor: Predictor,
    records: Sequence[Mapping[str, Any]],
    *,
    project: str,
    model_name: str,
    serving: ServingSpec,
    budget_ms: float | None = None,
    tolerance: float = 1e-6,
) -> InfraCheck:
    """:func:`check_serving` with the serving settings given one by one (no project spec).

    Raises
    ------
    InvalidInputError
        If there are no records to replay.
    """
    if not records:
        raise InvalidInputError(
            f"The infra check of version {version} needs sample requests to replay. Got none."
        )
    rows = [dict(r) for r in records]
    raw = predictor.predict_encoded(
        encode_frame(pd.DataFrame.from_records(rows), predictor.signature)
    )
    # the served score's offline value: P(positive), the value, or the top class's probability
    offline = read_outputs(raw, predictor.signature.labels, threshold=serving.threshold).scores
    with tempfile.TemporaryDirectory(prefix="conveyor-infra-") as scratch:
        log = PredictionLogWriter(Path(scratch))
        slot = ModelSlot(lambda: (version, predictor), lambda: version)
        app = create_serving_app(
            slot=slot,
            log=log,
            project=project,
            model_name=model_name,
            limits=ServingLimits(max_rows=max(serving.max_rows, len(rows))),
            threshold=serving.threshold,
            poll_interval_s=0.05,
        )
        served, versions, timings, problems = anyio.run(_replay, app, rows)
    problems = list(problems)
    wrong_versions = sorted({v for v in versions if v != version}, key=str)
    if wrong_versions:
        problems.append(f"The server answered with version(s) {wrong_versions}, not {version}.")
    diff = math.inf
    if served is not None and len(served) == len(offline):
        diff = float(np.max(np.abs(served - offline))) if len(offline) else 0.0
        if not diff <= tolerance:
            worst = int(np.argmax(np.abs(served - offline)))
            problems.append(
                f"Served scores differ from offline scores by up to {diff:.3g} (tolerance "
                f"{tolerance:g}); record {worst}: served {served[worst]:.6g}, offline "
                f"{offline[worst]:.6g}."
            )
    elif not problems:
        problems.append("The server did not return one score per replayed record.")
    ms = np.asarray(timings, dtype=np.float64) * 1000 if timings else np.array([math.nan])
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    if budget_ms is not None and not p99 <= budget_ms:
        problems.append(
            f"Single-row requests took {p99:.1f} ms at p99, over the {budget_ms:g} ms budget."
        )
    return InfraCheck(
        passed=not problems,
        version=version,
        records=len(rows),
        requests=len(timings) + 1,
        max_abs_diff=diff,
        p50_ms=p50,
        p99_ms=p99,
        budget_ms=budget_ms,
        problems=tuple(problems),
    )


def check_release(
    ws: Workspace,
    model: str,
    version: int,
    *,
    project: str | None = None,
    serving: ServingSpec | None = None,
    budget_ms: float | None = None,
    tolerance: float = 1e-6,
    fallback: Callable[[Predictor], list[dict[str, Any]]] | None = None,
) -> InfraCheck:
    """Load ``version`` as a server loads it and replay its stored sample requests served.

    The model is rebuilt from its artifact read through the artifact store (which checks the
    digest recorded at registration; no copy cached in this process is trusted), so a
    tampered, truncated or unsafe artifact fails here rather than in production. Never raises
    for a bad model: every failure is a problem of the returned check.

    Parameters
    ----------
    ws : Workspace
        Where the version and its artifact are.
    model, version : str, int
        The version to check.
    project : str, optional
        The project named in the served answers (default: ``model``).
    serving : ServingSpec, optional
        The serving settings (limits, threshold); default :class:`ServingSpec`'s.
    budget_ms, tolerance : float
        As for :func:`check_serving`.
    fallback : callable, optional
        Records to replay, from the loaded model, when the version stored no sample requests.

    Returns
    -------
    InfraCheck
    """
    mv = get_version(ws, model, version)
    digest = mv.lineage.get("sample_requests")
    try:
        predictor = load_model(ws.stores.artifacts.get_bytes(mv.artifact))
        records = list(orjson.loads(ws.stores.artifacts.get_bytes(digest))) if digest else []
    except Exception as exc:  # noqa: BLE001 - any failure to load refuses the release, with why
        return _refused(version, f"Version {version} of '{model}' cannot be loaded: {exc}")
    if not records and fallback is not None:
        records = fallback(predictor)
    if not records:
        return _refused(
            version,
            f"Version {version} of '{model}' stored no sample requests to replay "
            f"(lineage 'sample_requests').",
        )
    return replay_served(
        version,
        predictor,
        records,
        project=project or model,
        model_name=model,
        serving=serving or ServingSpec(),
        budget_ms=budget_ms,
        tolerance=tolerance,
    )


def require_release_check(ws: Workspace, model: str, version: int, **kw: Any) -> InfraCheck:
    """:func:`check_release`, raising when it fails; keywords as there.

    Raises
    ------
    GateRejectedError
        If the version cannot be loaded or its replayed requests fail; the message gives
        every reason and the evidence is the check.
    """
    check = check_release(ws, model, version, **kw)
    if not check.passed:
        raise GateRejectedError(
            f"Version {version} of '{model}' cannot become production: the release check "
            f"(load as served, replay sample requests, compare outputs) failed: "
            f"{' '.join(check.problems)}",
            evidence=check.to_dict(),
        )
    return check


def _refused(version: int, problem: str) -> InfraCheck:
    return InfraCheck(
        passed=False,
        version=version,
        records=0,
        requests=0,
        max_abs_diff=math.inf,
        p50_ms=math.nan,
        p99_ms=math.nan,
        budget_ms=None,
        problems=(problem,),
    )


async def _replay(
    app: Any, records: list[dict[str, Any]]
) -> tuple[np.ndarray | None, list[Any], list[float], list[str]]:
    """Start the app's lifespan, wait until ready, replay ``records``; never raises on HTTP."""
    transport = httpx.ASGITransport(app=app)
    versions: list[Any] = []
    timings: list[float] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        not_ready = await _ready(client)
        if not_ready is not None:
            return None, versions, timings, [not_ready]
        singles: list[float | None] = [None] * len(records)
        for i in range(max(MIN_TIMED_REQUESTS, len(records))):
            record = records[i % len(records)]
            started = time.perf_counter()
            response = await client.post("/v1/predict", json={"records": [record]})
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                return None, versions, timings, [_failure("A single-row request", response)]
            body = response.json()
            versions.append(body.get("model_version"))
            if i < len(records):
                singles[i] = float(body["predictions"][0]["score"])
        response = await client.post("/v1/predict", json={"records": records})
        if response.status_code != 200:
            return None, versions, timings, [_failure("The batch request", response)]
        body = response.json()
        versions.append(body.get("model_version"))
        batch = np.array([p["score"] for p in body["predictions"]], dtype=np.float64)
        single = np.array(singles, dtype=np.float64)
        gap = float(np.nanmax(np.abs(batch - single))) if len(batch) == len(single) else math.inf
        if not gap <= _SAME_SCORE:
            return (
                single,
                versions,
                timings,
                [
                    "Batch and single-row requests scored the same records differently "
                    f"(by {gap:.3g})."
                ],
            )
        return single, versions, timings, []


async def _ready(client: httpx.AsyncClient) -> str | None:
    """None once the app is ready; else why not (a refusal is reported at once, not waited on)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        response = await client.get("/v1/ready")
        if response.status_code == 200:
            return None
        if response.status_code != 503:  # only "no model loaded yet" is worth waiting for
            return _failure("The readiness probe", response)
        await anyio.sleep(0.02)
    return f"The candidate did not become ready within {READY_TIMEOUT_S:g} s."


def _failure(what: str, response: httpx.Response) -> str:
    return f"{what} was answered {response.status_code}: {response.text[:300]}"
