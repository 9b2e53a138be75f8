"""`conveyor predict | feedback | offline build | offline lookup`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.context import get
from conveyor.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

offline_app = typer.Typer(help="Precomputed predictions by entity key.", no_args_is_help=True)


def predict(
    ctx: typer.Context,
    batch: Annotated[Path, typer.Option("--batch", help="Input CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Output .parquet or .csv.")],
    version: Annotated[
        int | None, typer.Option(help="Model version (default: production).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Scoring threads (default: every core).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk (bounds memory).")] = 100_000,
) -> None:
    """Score a file with the production model: streamed, on every core, written atomically."""
    from conveyor.serving.scoring import score_batch

    c = get(ctx, existing=True)
    say = c.progress()
    result = score_batch(
        c.ws,
        c.spec,
        batch,
        out,
        version=version,
        workers=workers,
        chunk_rows=chunk_rows,
        progress=lambda done, total: say(
            f"scored {done:,}" + (f" of {total:,} rows" if total else " rows")
        ),
    )
    c.emit(result, f"scored {result['rows']:,} rows with v{result['model_version']} -> {out}")


def feedback(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            help="CSV/Parquet with request_id (or entity columns and time) and the label column "
            "named as in conveyor.yaml (or 'label')."
        ),
    ],
) -> None:
    """Record ground truth; it is joined to the logged predictions (idempotent)."""
    from conveyor.data.service import read_source
    from conveyor.serving.scoring import record_project_feedback

    c = get(ctx)
    frame, _ = read_source(source)
    column = feedback_label_column(frame, c.spec.label, source=str(source))
    items = feedback_items(frame, c.spec.entities, label=column)
    result = record_project_feedback(c.ws, c.spec, items)
    unknown = f"; {len(result.unknown_ids)} unknown request ids" if result.unknown_ids else ""
    c.emit(
        result.to_dict(),
        f"recorded {result.accepted:,} labels "
        f"({result.duplicates:,} replace earlier ones){unknown}",
    )


def feedback_label_column(frame: pd.DataFrame, label: str, *, source: str) -> str:
    """The column of a feedback file holding the label: the spec's ``label``, else ``label``.

    Raises
    ------
    InvalidInputError
        If the file has neither column; the message names both.
    """
    for name in (label, "label"):
        if name in frame.columns:
            return name
    wanted = f"{label!r} (the label in conveyor.yaml) or 'label'" if label != "label" else "'label'"
    raise InvalidInputError(
        f"Feedback file '{source}' needs a label column {wanted}; it has {list(frame.columns)}."
    )


def feedback_items(
    frame: pd.DataFrame, entities: list[str], *, label: str = "label"
) -> list[dict[str, Any]]:
    """Feedback items of a frame: by ``request_id``, else by the entity columns and ``time``;
    the label is read from column ``label``."""
    clean = frame.astype(object).where(frame.notna(), None)
    if "request_id" in frame.columns:
        return [
            {"request_id": r["request_id"], "label": r[label]}
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
        {"entity": {e: r[e] for e in entities}, "time": str(r["time"]), "label": r[label]}
        for r in clean.to_dict(orient="records")
    ]


@offline_app.command("build")
def offline_build(
    ctx: typer.Context,
    source: Annotated[
        Path | None,
        typer.Option(help="CSV/Parquet of entities (default: the training window's batches)."),
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Model version (default: production).")
    ] = None,
) -> None:
    """Precompute a prediction for every entity into the offline table."""
    from conveyor.serving.scoring import build_offline_table

    c = get(ctx, existing=True)
    say = c.progress()
    result = build_offline_table(
        c.ws,
        c.spec,
        source=source,
        version=version,
        progress=lambda done, total: say(f"scored {done:,} rows"),
    )
    c.emit(
        result,
        f"stored {result['keys']:,} keys from {result['rows']:,} rows with "
        f"v{result['model_version']} in {result['url']}",
    )


@offline_app.command("lookup")
def offline_lookup(
    ctx: typer.Context,
    keys: Annotated[list[str], typer.Argument(help="Entity keys.")],
) -> None:
    """Print the stored predictions of some keys."""
    from conveyor.serving.scoring import lookup_keys

    c = get(ctx, existing=True)
    found = lookup_keys(c.ws, c.spec, keys)
    missing = [k for k in keys if k not in found]
    c.emit({"found": found, "missing": missing}, {"found": found, "missing": missing})


def register(app: typer.Typer) -> None:
    app.command()(predict)
    app.command()(feedback)
    app.add_typer(offline_app, name="offline")
