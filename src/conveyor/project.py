"""``cv.Project``: the Python face of one project's line. Every method delegates to a service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.entities import AliasPointer
from conveyor.data.cards import build_data_card, write_data_card_html
from conveyor.data.service import IngestResult, Source, ingest_batch
from conveyor.monitoring.service import MonitorOutcome, monitor
from conveyor.pipeline.cycle import CycleOutcome, run_cycle
from conveyor.pipeline.gate import GateOutcome, gate_version, promote_version
from conveyor.pipeline.retention import RetentionReport, enforce_retention
from conveyor.pipeline.watch import WatchOutcome, watch_release
from conveyor.registry.service import rollback
from conveyor.serving.scoring import record_project_feedback, score_batch
from conveyor.spec import SPEC_FILENAME, ProjectSpec, load_spec
from conveyor.training.service import TrainOutcome, train_model
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Project:
    """One project of a workspace.

    Examples
    --------
    >>> project = Project.load(Workspace.open(), Path("conveyor.yaml"))  # doctest: +SKIP
    >>> project.ingest("week1.csv").version.status  # doctest: +SKIP
    'accepted'
    """

    ws: Workspace
    spec: ProjectSpec

    @classmethod
    def load(cls, ws: Workspace, path: Path = Path(SPEC_FILENAME)) -> Project:
        return cls(ws=ws, spec=load_spec(path))

    def ingest(self, source: Source, **kw: Any) -> IngestResult:
        return ingest_batch(self.ws, self.spec, source, **kw)

    def data_card(self, version: str | int, *, html: Path | None = None) -> dict[str, Any]:
        card = build_data_card(self.ws, self.spec, version)
        if html is not None:
            write_data_card_html(card, html)
        return card

    def retention(self, *, dry_run: bool = False, **kw: Any) -> RetentionReport:
        return enforce_retention(self.ws, self.spec, dry_run=dry_run, **kw)

    def train(self, **kw: Any) -> TrainOutcome:
        return train_model(self.ws, self.spec, **kw)

    def gate(self, version: int, **kw: Any) -> GateOutcome:
        return gate_version(self.ws, self.spec, version, **kw)

    def promote(self, version: int, *, reason: str) -> AliasPointer:
        return promote_version(self.ws, self.spec, version, reason=reason)

    def rollback(self, *, reason: str, block: bool = False) -> AliasPointer:
        return rollback(self.ws, self.spec.model_name, reason=reason, block=block)

    def predict(self, source: Path, output: Path, **kw: Any) -> dict[str, Any]:
        return score_batch(self.ws, self.spec, source, output, **kw)

    def feedback(self, items: Sequence[Mapping[str, Any]]) -> Any:
        return record_project_feedback(self.ws, self.spec, items)

    def monitor(self, **kw: Any) -> MonitorOutcome:
        return monitor(self.ws, self.spec, **kw)

    def watch(self) -> WatchOutcome:
        return watch_release(self.ws, self.spec)

    def run_cycle(self, **kw: Any) -> CycleOutcome:
        return run_cycle(self.ws, self.spec, **kw)
