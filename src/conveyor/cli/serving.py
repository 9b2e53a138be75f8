"""`conveyor serve | predict | feedback`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from conveyor.cli.context import get
from conveyor.core.errors import InvalidInputError
from conveyor.data.service import read_source
from conveyor.serving.service import predict_batch, record_feedback, serve
from conveyor.spec import load_spec


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from conveyor.yaml).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    project: Annotated[
        list[Path] | None,
        typer.Option(
            "--project",
            help="Spec of a project to serve; repeat to serve several side by side (the first "
            "is the default of /v1/predict). Default: the --spec project.",
        ),
    ] = None,
) -> None:
    """Serve the production alias over HTTP; hot-swaps when the alias moves."""
    c = get(ctx)
    paths = list(project) if project else [c.spec_path]
    specs = [load_spec(p) for p in paths]
    s = specs[0].serving
    names = ", ".join(f"'{spec.project}'" for spec in specs)
    c.emit(None, f"serving {names} on http://{host or s.host}:{port or s.port}")
    serve(c.ws, paths, host=host or s.host, port=port or s.port, workers=workers or s.workers)


def predict(
    ctx: typer.Context,
    batch: Annotated[Path, typer.Option("--batch", help="Input CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Output .parquet or .csv.")],
) -> None:
    """Score a file with the production model (streamed, written atomically)."""
    c = get(ctx)
    say = c.progress()
    result = predict_batch(
        c.ws, c.spec, batch, out, progress=lambda done, total: say(f"scored {done:,} rows")
    )
    c.emit(result, f"scored {result['rows']:,} rows with v{result['model_version']} -> {out}")


def feedback(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(help="CSV/Parquet with request_id (or entity columns and time) and label."),
    ],
) -> None:
    """Record ground truth; it is joined to the logged predictions."""
    c = get(ctx)
    frame, _ = read_source(source)
    if "label" not in frame.columns:
        raise InvalidInputError(
            f"Feedback file '{source}' needs a 'label' column; it has {list(frame.columns)}."
        )
    items = _items(frame, c.spec.entities)
    result = record_feedback(c.ws, c.spec, items)
    c.emit(result.to_dict() if hasattr(result, "to_dict") else result, f"recorded {result}")


def _items(frame: pd.DataFrame, entities: list[str]) -> list[dict[str, Any]]:
    clean = frame.astype(object).where(frame.notna(), None)
    if "request_id" in frame.columns:
        return [
            {"request_id": r["request_id"], "label": r["label"]}
            for r in clean.to_dict(orient="records")
        ]
    missing = [e for e in entities if e not in frame.columns] + (
        [] if "time" in frame.columns else ["time"]
    )
    if not entities or missing:
        raise InvalidInputError(
            "Feedback rows need 'request_id', or the entity columns "
            f"{entities} and 'time'; missing {missing or entities}."
        )
    return [
        {"entity": {e: r[e] for e in entities}, "time": str(r["time"]), "label": r["label"]}
        for r in clean.to_dict(orient="records")
    ]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
