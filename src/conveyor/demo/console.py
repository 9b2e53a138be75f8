"""The demo's terminal view: a progress bar over the weeks, a line a week, a summary table."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conveyor.reports.events import move_label

_STYLE = {
    "promotion": "green",
    "rejection": "yellow",
    "rollback": "red",
    "quarantine": "magenta",
    "forced": "red",
    "alert": "dim",
}


class DemoConsole:
    """Progress on stderr; silent when ``quiet`` (``--json``)."""

    def __init__(self, *, total: int, quiet: bool = False) -> None:
        self.console = Console(stderr=True, highlight=False, quiet=quiet)
        self.progress = Progress(
            TextColumn("[bold]weeks"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", style="dim"),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("", total=total)

    def __enter__(self) -> DemoConsole:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step(self, message: str) -> None:
        self.progress.update(self.task, description=escape(message[:70]))

    def advance(self, record: Any = None) -> None:
        self.progress.advance(self.task)
        if record is None:
            return
        events = " ".join(
            f"[{_STYLE.get(e['kind'], 'white')}]{e['kind']} {escape(str(e['label']))}[/]"
            for e in record.events
            if e["kind"] != "alert"
        )
        self.console.print(
            f"week {record.week:>2} {record.start}  v{record.served_version:<3} "
            f"AUC ct {record.ct['auc']:.3f} static {record.static['auc']:.3f}  {events}"
        )

    def finish(self, summary: dict[str, Any], out: Path, *, home: Path, spec_path: Path) -> None:
        """Print the summary tables, then where everything is and what to try next."""
        table = Table(title="Conveyor demo: New York flights, 2013", show_header=True)
        table.add_column("")
        table.add_column("continuous training", justify="right")
        table.add_column("static (January)", justify="right")
        table.add_row(
            "mean weekly AUC, 2nd half",
            f"{summary['ct']['auc_h2']:.3f}",
            f"{summary['static']['auc_h2']:.3f}",
        )
        table.add_row(
            "mean weekly accuracy, 2nd half",
            f"{summary['ct']['accuracy_h2']:.3f}",
            f"{summary['static']['accuracy_h2']:.3f}",
        )
        table.add_row(
            "mean weekly AUC, all served weeks",
            f"{summary['ct']['auc_all']:.3f}",
            f"{summary['static']['auc_all']:.3f}",
        )
        self.console.print(table)
        counts = Table(show_header=False)
        for key in (
            "promotions",
            "gate_promotions",
            "rejections",
            "rollbacks",
            "quarantined",
            "forced_releases",
            "alerts",
            "model_versions",
            "predictions_served",
            "max_swap_s",
            "elapsed_s",
        ):
            counts.add_row(key.replace("_", " "), str(summary[key]))
        self.console.print(counts)
        moves = [r for r in summary["history"] if r["action"] == "rollback"]
        for move in moves:
            self.console.print(
                f"rollback {move_label(move['from'], move['to'])}: {escape(str(move['reason']))}",
                soft_wrap=True,
            )
        for line in next_steps(out, home=home, spec_path=spec_path):
            self.console.print(escape(line), soft_wrap=True)  # whole lines, ready to copy


def next_steps(out: Path, *, home: Path, spec_path: Path) -> list[str]:
    """The demo's last lines: where its files and workspace are, and commands to try next.

    Parameters
    ----------
    out : Path
        The demo's output folder (report.html, summary.json).
    home, spec_path : Path
        The demo's workspace and project spec, as ``--home`` and ``--spec`` take them.

    Returns
    -------
    list of str
        Lines to print, commands quoted for a POSIX shell.
    """
    base = f"conveyor --home {shlex.quote(str(home))} --spec {shlex.quote(str(spec_path))}"
    return [
        f"report:    {out / 'report.html'} (open it in a browser)",
        f"summary:   {out / 'summary.json'}",
        f"workspace: {home}",
        "try next:",
        f"  {base} history         # every move of production, who and why",
        f"  {base} alerts list     # what monitoring and the release watch raised",
        f"  {base} serve           # serve the production model over HTTP on 127.0.0.1",
    ]
