"""`conveyor agent`: the long-running controller of one project.

Every tick the agent, in this order: runs a monitoring window when one is due; runs the
post-release watch (a release worse than the one it replaced is rolled back before anything is
trained); picks up the files waiting in the landing folder; and runs one continuous-training
cycle with them (ingest and validate each, evaluate the triggers, train, gate, promote or
alert). Landed files move to ``processed/``, or to ``quarantined/`` when validation quarantined
them, or to ``unreadable/``, each by an atomic rename, so a file is ingested once.

A stop request (SIGTERM or SIGINT in the CLI) is honoured between steps: the current step
finishes, the cycle is recorded as stopped (the next cycle resumes it, its training a cache
hit) and the lease is released. A second request abandons the current step at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conveyor.core.clock import utcnow
from conveyor.core.errors import ConflictError, ConveyorError, InvalidInputError
from conveyor.monitoring.service import monitor
from conveyor.pipeline.cycle import LEASE_TTL_S, CycleOutcome, run_cycle
from conveyor.pipeline.watch import WatchOutcome, watch_release
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

Progress = Callable[[str], None]
Clock = Callable[[], datetime]
LANDING_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".parquet")
#: The shortest lease an agent accepts: renewed every third of it, it must outlast a slow query.
MIN_LEASE_TTL_S = 1.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """How often the agent looks and where.

    Parameters
    ----------
    landing : Path or None
        Folder whose ``*.csv[.gz|.zip]`` and ``*.parquet`` files are batches to ingest.
    interval_s : float
        Seconds between ticks.
    monitor_every_s : float or None
        Seconds between monitoring windows; None turns monitoring off.
    watch : bool
        Run the post-release watch every tick.
    lease_ttl_s : float
        Seconds the project's lease lives without renewal. A running cycle renews it every
        third of that time; when an agent dies holding it, another agent can take over once it
        expires. Shorter means a faster takeover after a crash, but a cycle whose renewals are
        delayed longer than this loses the lease. ``conveyor agent --lease-s``.
    """

    landing: Path | None = None
    interval_s: float = 60.0
    monitor_every_s: float | None = 3600.0
    watch: bool = True
    lease_ttl_s: float = LEASE_TTL_S

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise InvalidInputError(
                f"The agent's 'interval_s' must be a number of seconds in (0, inf). "
                f"Got {self.interval_s!r} instead."
            )
        if not (self.lease_ttl_s >= MIN_LEASE_TTL_S and math.isfinite(self.lease_ttl_s)):
            raise InvalidInputError(
                f"The agent's lease time ('lease_ttl_s', `conveyor agent --lease-s`) must be "
                f"a number of seconds in "
                f"[{MIN_LEASE_TTL_S}, inf). Got {self.lease_ttl_s!r} instead."
            )
        if self.monitor_every_s is not None and not self.monitor_every_s > 0:
            raise InvalidInputError(
                f"The agent's 'monitor_every_s' must be a number of seconds in (0, inf) or "
                f"None. Got {self.monitor_every_s!r} instead."
            )


@dataclass
class TickReport:
    """What one tick did."""

    at: datetime
    monitored: str | None = None
    watch: str | None = None
    watched: WatchOutcome | None = None
    landed: list[str] = field(default_factory=list)
    cycle: CycleOutcome | None = None
    busy: bool = False
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        cycle = self.cycle
        return {
            "at": self.at.isoformat(),
            "monitored": self.monitored,
            "watch": self.watch,
            "rolled_back": None
            if self.watched is None or not self.watched.rolled_back
            else {"from": self.watched.version, "to": self.watched.moved_to},
            "landed": self.landed,
            "busy": self.busy,
            "errors": self.errors,
            "cycle": None
            if cycle is None
            else {
                "id": cycle.run.id,
                "trigger": cycle.run.trigger,
                "status": str(cycle.run.status),
                "promoted": cycle.promoted,
                "aborted": cycle.aborted,
            },
        }


class Agent:
    """The controller loop of one project; see the module documentation."""

    def __init__(
        self,
        ws: Workspace,
        spec: ProjectSpec,
        config: AgentConfig | None = None,
        *,
        clock: Clock = utcnow,
        progress: Progress | None = None,
    ) -> None:
        self.ws, self.spec = ws, spec
        self.config = config or AgentConfig()
        self.clock = clock
        self.say = progress or (lambda _msg: None)
        self._stop = threading.Event()
        self._stop_requests = 0

    # -- stopping ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current step, then stop; a second request abandons the step at once."""
        self._stop_requests += 1
        self._stop.set()
        if self._stop_requests > 1:
            raise KeyboardInterrupt("second stop request: abandoning the current step")

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- one tick ------------------------------------------------------------------------------

    def pending_files(self) -> list[Path]:
        """The landed files waiting to be ingested, oldest name first."""
        landing = self.config.landing
        if landing is None or not landing.is_dir():
            return []
        return sorted(
            p
            for p in landing.iterdir()
            if p.is_file()
            and p.name.lower().endswith(LANDING_SUFFIXES)
            and not p.name.startswith(".")
        )

    def tick(self) -> TickReport:
        """Monitor if due, watch the release, then one cycle with the landed files."""
        report = TickReport(at=self.clock())
        steps: list[tuple[str, Callable[[TickReport], None]]] = [
            ("monitoring", self._monitor),
            ("watch", self._watch),
            ("cycle", self._cycle),
        ]
        for name, step in steps:
            if self.stopping:
                break
            try:
                step(report)
            except ConflictError as exc:
                report.busy = True
                self.say(f"{name}: {exc}")
            except ConveyorError as exc:
                report.errors.append(f"{name}: {exc}")
                self.say(f"{name} failed: {exc}")
        return report

    def _monitor(self, report: TickReport) -> None:
        every = self.config.monitor_every_s
        if every is None:
            return
        previous = self.ws.stores.monitor.list_monitor_reports(self.spec.project)
        now = utcnow()
        if previous and previous[-1].window_end + timedelta(seconds=every) > now:
            return
        outcome = monitor(self.ws, self.spec, until=now)
        report.monitored = outcome.report.id
        rows = outcome.report.stats.get("rows", 0)
        self.say(f"monitoring window {outcome.report.id}: {rows:,} predictions")

    def _watch(self, report: TickReport) -> None:
        if not self.config.watch:
            return
        outcome = watch_release(self.ws, self.spec)
        report.watch, report.watched = outcome.status, outcome
        if outcome.rolled_back:
            self.say(f"rolled back v{outcome.version} to v{outcome.moved_to}")

    def _cycle(self, report: TickReport) -> None:
        files = self.pending_files()
        report.landed = [p.name for p in files]
        if files:
            self.say(f"{len(files)} landed file(s): {', '.join(report.landed)}")
        outcome = run_cycle(
            self.ws,
            self.spec,
            sources=files,
            progress=self.say,
            now=self.clock(),
            should_stop=lambda: self.stopping,
            lease_ttl_s=self.config.lease_ttl_s,
            skip_unreadable=True,
        )
        report.cycle = outcome
        ingested = outcome.steps.get("ingest", [])
        for path, result in zip(files, ingested, strict=False):
            status = result["status"]
            _move(path, status if status in ("quarantined", "unreadable") else "processed")
        self.say(f"cycle {outcome.run.id}: {outcome.run.status} (trigger: {outcome.run.trigger})")

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self, *, max_ticks: int | None = None, on_tick: Callable[[TickReport], None] | None = None
    ) -> int:
        """Tick every ``interval_s`` until stopped (or ``max_ticks``); return the ticks run."""
        ticks = 0
        self.say(f"agent of '{self.spec.project}' started; a tick every {self.config.interval_s}s")
        while not self.stopping and (max_ticks is None or ticks < max_ticks):
            started = time.monotonic()
            report = self.tick()
            ticks += 1
            if on_tick is not None:
                on_tick(report)
            wait = self.config.interval_s - (time.monotonic() - started)
            if max_ticks is not None and ticks >= max_ticks:
                break
            self._stop.wait(max(wait, 0.0))
        self.say("agent stopped")
        return ticks


def _move(path: Path, folder: str) -> None:
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        target = target_dir / f"{path.stem}-{int(time.time() * 1000)}{path.suffix}"
    path.replace(target)
