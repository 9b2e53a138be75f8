"""Serving service: wire the online app to the registry, run it, score files, take feedback."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette

from conveyor.alerting.service import raise_alert
from conveyor.config import Settings
from conveyor.core.clock import utcnow
from conveyor.core.entities import AlertSeverity, VersionStatus
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.core.hosts import check_bind
from conveyor.core.model import Predictor
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    get_version,
    production_history,
)
from conveyor.serving.admission import AdmissionConfig
from conveyor.serving.app import ModelSlot, create_serving_app
from conveyor.serving.batching import BatchingConfig
from conveyor.serving.feedback import join_feedback, labelled_metrics
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter
from conveyor.serving.routing import Canary, Deployment, Shadow
from conveyor.serving.scoring import mount_scoring_routes, version_labels
from conveyor.serving.slot import AlertHook
from conveyor.serving.temporaries import held_lock
from conveyor.serving.validation import ServingLimits
from conveyor.spec import ProjectSpec, load_spec
from conveyor.training.service import load_version
from conveyor.workspace import Workspace

logger = logging.getLogger(__name__)

SPEC_ENV = "CONVEYOR_SPEC"
"""Environment variable naming the spec(s) a server worker serves, joined by ``os.pathsep``."""

HOST_ENV = "CONVEYOR_SERVE_HOST"
"""Environment variable telling server workers the address they are bound to."""

SHADOW_KIND = "shadow_predictions"
"""The project directory holding the shadow version's prediction log."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where ``prometheus_client`` workers keep their values; set per run by :func:`serve`."""

_METRICS_PREFIX = "conveyor-serve-metrics-"
_LOCK_NAME = ".lock"


def alias_loader(
    ws: Workspace, spec: ProjectSpec, alias: str = PRODUCTION
) -> tuple[Callable[[], tuple[int, Predictor]], Callable[[], int | None]]:
    """A loader of the model under ``alias`` and a poll of its version, for :class:`ModelSlot`."""
    model = spec.model_name

    def current() -> int | None:
        return find_alias_version(ws, model, alias)

    def load() -> tuple[int, Predictor]:
        version = current()
        if version is None:
            raise NotFoundError(f"Model '{model}' has no version under the alias '{alias}'.")
        return version, load_version(ws, model, version)

    return load, current


def production_loader(
    ws: Workspace, spec: ProjectSpec
) -> tuple[Callable[[], tuple[int, Predictor]], Callable[[], int | None]]:
    """A loader of the production model and a poll of its version, for :class:`ModelSlot`."""
    return alias_loader(ws, spec, PRODUCTION)


def sample_requests(ws: Workspace, spec: ProjectSpec, version: int) -> list[dict[str, Any]]:
    """The stored sample requests of a version, replayed to warm it before it takes traffic."""
    digest = get_version(ws, spec.model_name, version).lineage.get("sample_requests")
    return list(orjson.loads(ws.stores.artifacts.get_bytes(digest))) if digest else []


def last_good_versions(ws: Workspace, model: str, wanted: int) -> list[int]:
    """Earlier production versions to serve when ``wanted`` cannot be loaded, newest first.

    They come from the production history (the registry's audit events of the alias), newest
    move first; versions since blocked or archived are left out.
    """
    found: list[int] = []
    for event in reversed(production_history(ws, model)):
        for version in (event.to_version, event.from_version):
            if version is None or version == wanted or version in found:
                continue
            if get_version(ws, model, version).status is VersionStatus.READY:
                found.append(version)
    return found


def serving_alerter(ws: Workspace, spec: ProjectSpec) -> AlertHook:
    """Raise a serving alert (a refused model, a fallback): store it, send it to the sinks.

    The sinks run on the alert delivery thread, so a slow one never delays loading the
    model or the fallback, nor the event loop. An alert of the same kind and wanted version
    recorded within ``alerts.cooldown_hours`` (at least an hour, so the workers of one server
    raise it once) is not raised again.
    """
    cooldown = timedelta(hours=max(spec.alerts.cooldown_hours, 1.0))

    def alert(kind: str, message: str, evidence: Mapping[str, Any]) -> None:
        now = utcnow()
        wanted = evidence.get("wanted")
        for earlier in ws.stores.monitor.list_alerts(spec.project, kind=kind):
            if earlier.evidence.get("wanted") == wanted and earlier.created_at >= now - cooldown:
                return
        raise_alert(
            ws,
            spec,
            kind=kind,
            message=message,
            evidence={"model": spec.model_name, **evidence},
            severity=AlertSeverity.CRITICAL,
            now=now,
            background=True,
        )

    return alert


def _slot(ws: Workspace, spec: ProjectSpec, alias: str) -> ModelSlot:
    load, current = alias_loader(ws, spec, alias)
    production = alias == PRODUCTION
    return ModelSlot(
        load,
        current,
        sample_records=lambda v: sample_requests(ws, spec, v),
        release_when_unset=not production,
        fallback_versions=(lambda v: last_good_versions(ws, spec.model_name, v))
        if production
        else None,
        load_version=lambda v: load_version(ws, spec.model_name, v),
        on_alert=serving_alerter(ws, spec),
    )


def _unscored_columns(spec: ProjectSpec) -> list[str]:
    """The project's columns that reach the server but not the model: timestamp, ignored."""
    return [c for c in (spec.timestamp, *spec.ignore) if c and c != spec.label]


def build_deployment(ws: Workspace, spec: ProjectSpec) -> Deployment:
    """One project's model as served: production, and the canary and shadow it declares."""
    serving = spec.serving
    canary = shadow = None
    if serving.canary is not None:
        canary = Canary(
            _slot(ws, spec, serving.canary.alias),
            serving.canary.percent,
            serving.canary.sticky_key,
        )
    if serving.shadow is not None:
        shadow = Shadow(
            _slot(ws, spec, serving.shadow.alias),
            PredictionLogWriter(
                ws.project_dir(spec.project, SHADOW_KIND),
                max_pending_bytes=serving.log_buffer_bytes,
            ),
        )
    post = PostProcessor(spec.postprocess, task=spec.task, threshold=serving.threshold)
    # the project's own timestamp and ignored columns come with its rows: logged, never scored
    passthrough = [*spec.entities, *post.fields, *_unscored_columns(spec)]
    if serving.canary is not None and serving.canary.sticky_key:
        passthrough.append(serving.canary.sticky_key)
    return Deployment(
        project=spec.project,
        model_name=spec.model_name,
        slot=_slot(ws, spec, PRODUCTION),
        log=PredictionLogWriter(
            ws.project_dir(spec.project, "predictions"), max_pending_bytes=serving.log_buffer_bytes
        ),
        threshold=serving.threshold,
        passthrough=tuple(dict.fromkeys(passthrough)),
        canary=canary,
        shadow=shadow,
        postprocess=None if post.is_identity else post,
    )


def build_app(
    ws: Workspace, spec: ProjectSpec, *more: ProjectSpec, host: str = "127.0.0.1"
) -> Starlette:
    """The online app for the production alias of ``spec`` (the default) and of ``more``.

    Server-wide settings (limits, batching, queue, trusted hosts, CORS origins) come from the
    first spec; ``host`` is the bind address (a trusted ``Host``) and the workspace's token, when
    set, guards every write but the predictions.
    """
    specs = [spec, *more]
    names = [s.model_name for s in specs]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"Each served project needs its own model name. Got {names}.")
    serving = spec.serving
    deployments = [build_deployment(ws, s) for s in specs]
    app = create_serving_app(
        deployments=deployments,
        limits=ServingLimits(
            max_rows=serving.max_rows,
            max_body_bytes=serving.max_body_bytes,
            allow_extra_fields=serving.allow_extra_fields,
            max_string_chars=serving.max_string_chars,
            body_timeout_s=serving.body_timeout_s,
        ),
        batching=BatchingConfig(
            enabled=serving.batching.enabled,
            max_batch_rows=serving.batching.max_batch_rows,
            max_wait_s=serving.batching.max_wait_ms / 1000.0,
        ),
        max_queue=serving.max_queue,
        admission=AdmissionConfig(max_wait_s=serving.max_queue_wait_ms / 1000.0),
        host=host,
        allowed_hosts=serving.allowed_hosts,
        cors_origins=serving.cors_origins,
        token=ws.settings.token.get_secret_value() if ws.settings.token else None,
    )
    # feedback, live metrics and offline lookup of the default project
    first = deployments[0]
    return mount_scoring_routes(app, ws, spec, slot=first.slot, log=first.log)


def app_from_env() -> Starlette:
    """App factory for uvicorn workers: workspace from ``CONVEYOR_*``, specs ``CONVEYOR_SPEC``."""
    ws = Workspace.open(Settings())
    paths = os.environ.get(SPEC_ENV, "conveyor.yaml").split(os.pathsep)
    specs = [load_spec(Path(p)) for p in paths if p]
    return build_app(ws, specs[0], *specs[1:], host=os.environ.get(HOST_ENV, "127.0.0.1"))


def serve(
    ws: Workspace,
    spec_path: Path | Sequence[Path],
    *,
    host: str,
    port: int,
    workers: int = 1,
    graceful_timeout_s: float = 30.0,
    insecure: bool = False,
) -> None:
    """Run the online server until SIGINT or SIGTERM (127.0.0.1 unless told otherwise).

    Every spec in ``spec_path`` is served side by side, the first as the default. On SIGTERM
    the server stops accepting connections, answers the requests in flight (for at most
    ``graceful_timeout_s``), writes and closes the prediction logs, then returns (the CLI
    exits 0: a requested, clean stop). With ``workers`` > 1 each worker process writes its
    own log segments, and ``/metrics`` adds up every worker's figures through a private
    ``prometheus_client`` multiprocess directory made for this run and removed after it.

    Raises
    ------
    ConfigError
        If ``host`` is not a loopback address, no token is set and ``insecure`` is false
        (see :func:`conveyor.core.hosts.check_bind`).
    """
    if check_bind(
        host, has_token=ws.settings.token is not None, insecure=insecure, server="conveyor serve"
    ):
        logger.warning(
            "conveyor serve listens on %s without a token: anyone who reaches it can record "
            "feedback and write offline lookups. Set CONVEYOR_TOKEN.",
            host,
        )
    paths = [spec_path] if isinstance(spec_path, Path) else list(spec_path)
    os.environ.update({k: v for k, v in ws.env().items() if k.startswith("CONVEYOR_")})
    os.environ[SPEC_ENV] = os.pathsep.join(str(p.resolve()) for p in paths)
    os.environ[HOST_ENV] = host
    run_app(
        "conveyor.serving.service:app_from_env",
        host=host,
        port=port,
        workers=workers,
        graceful_timeout_s=graceful_timeout_s,
    )


def run_app(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    graceful_timeout_s: float = 30.0,
) -> None:
    """Run the app that ``factory`` (``"module:function"``) builds in each worker, until stopped.

    Sets up what every serving run needs around uvicorn: a private multiprocess metrics
    directory (in the environment before any worker starts) and exit status 0 after a clean
    SIGTERM drain. Returns once the server has shut down.
    """
    with metrics_directory() as directory, _sigterm_after_uvicorn():
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = str(directory)
        try:
            uvicorn.run(
                factory,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=int(graceful_timeout_s),
                # a worker importing the model stack on a busy machine must not be killed as hung
                timeout_worker_healthcheck=60,
            )
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous


@contextlib.contextmanager
def _sigterm_after_uvicorn() -> Iterator[None]:
    """End the run with exit status 0 on SIGTERM, after uvicorn's clean shutdown.

    uvicorn catches SIGTERM, drains and shuts down, then restores the previous handler and
    raises the signal again: with the default handler the process would die of it (status
    -15, "killed") after a clean drain. This handler turns it into ``SystemExit(0)``, as it
    does a SIGTERM that comes before uvicorn has taken the signal (nothing was served yet).
    """

    def stopped(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stale_metrics_directories() -> Iterator[Path]:
    for path in Path(tempfile.gettempdir()).glob(f"{_METRICS_PREFIX}*"):
        if path.is_dir():
            yield path


@contextlib.contextmanager
def metrics_directory() -> Iterator[Path]:
    """A private, empty ``prometheus_client`` multiprocess directory for one server run.

    Made under the system's temporary directory and locked for the run; directories of
    earlier runs that died (their lock is free) are removed first, and this one is removed
    at the end.
    """
    for stale in _stale_metrics_directories():
        with held_lock(stale / _LOCK_NAME, create=False) as held:
            if held:
                shutil.rmtree(stale, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=_METRICS_PREFIX))
    try:
        with held_lock(directory / _LOCK_NAME, create=True):
            yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def compare_shadow(
    ws: Workspace,
    spec: ProjectSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Compare the shadow version with the versions that answered, on the same labelled requests.

    Production (or canary) predictions and shadow predictions of the same request ids are
    joined with the feedback received so far; both are scored with the project's metrics.

    Returns
    -------
    dict
        ``rows`` (labelled requests both scored), and for ``production`` and ``shadow`` their
        ``versions`` and ``metrics``; the metrics are empty when no row is labelled.
    """
    feedback = ws.project_dir(spec.project, "feedback")
    answered = join_feedback(
        ws.project_dir(spec.project, "predictions"), feedback, since=since, until=until
    )
    mirrored = join_feedback(
        ws.project_dir(spec.project, SHADOW_KIND), feedback, since=since, until=until
    )
    both = answered[["request_id", "model_version", "score", "proba", "label"]].merge(
        mirrored[["request_id", "model_version", "score", "proba"]],
        on="request_id",
        suffixes=("", "_shadow"),
    )
    labels_of = version_labels(ws, spec)
    result: dict[str, Any] = {"rows": len(both)}
    for role, column in (("production", ""), ("shadow", "_shadow")):
        versions = sorted(int(v) for v in both[f"model_version{column}"].unique())
        metrics: dict[str, float] = {}
        if versions:  # labels read with the classes of the newest version of the role
            found, _ = labelled_metrics(
                labels_of(versions[-1]), both, score=f"score{column}", proba=f"proba{column}"
            )
            metrics = found if found.get("n") else {}
        result[role] = {"versions": versions, "metrics": metrics}
    return result
