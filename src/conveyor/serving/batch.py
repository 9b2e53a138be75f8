"""Batch scoring: stream a CSV or Parquet file through a model in chunks, on every core.

The input is cut into chunks (Parquet row groups, sliced to ``chunk_rows``; CSV blocks of
``chunk_rows`` rows), each encoded with :func:`conveyor.core.signature.encode_frame` (the
encoding training used), scored and post-processed by a pool of ``workers`` threads. Reading
Parquet, encoding, LightGBM/XGBoost prediction and writing all release the GIL, so threads use
every core without copying chunks between processes; at most ``2 * workers`` chunks are in
flight, so memory stays bounded whatever the file size. Chunks are written in input order.

The output keeps every input column and adds ``score``, ``label`` (the class value: the positive
class at the threshold for binary, the most probable class for multiclass; null for
regression), for multiclass one ``proba_<class>`` column per class, and ``model_version``;
with a post-processing chain also ``post_score``, ``post_label``, ``withheld``, ``reason`` and
(re-ranking) ``rank``. It is written to a temporary file beside the
target and renamed into place, so an interrupted run leaves no partial output and a rerun
yields exactly one output row per input row. Each temporary is locked by the run writing it,
and every run removes the temporaries (of any output in the same directory) whose run died
(see :mod:`conveyor.serving.temporaries`). The model version, model name and the input's
SHA-256 are recorded in the Parquet schema metadata (key ``conveyor``) and in a sidecar
``<output>.meta.json`` (written before the output is renamed into place).
"""

from __future__ import annotations

import collections
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from conveyor.core.clock import utcnow
from conveyor.core.errors import InvalidInputError, NotFoundError, SchemaError
from conveyor.core.labels import Task
from conveyor.core.model import Predictor
from conveyor.core.schema import ColumnKind
from conveyor.core.signature import Signature, encode_frame
from conveyor.data.csv_cells import escape_formula_cells
from conveyor.serving.outputs import label_arrow_type, label_text, read_outputs
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.temporaries import locked_temporary, remove_stale_temporaries

Progress = Callable[[int, int | None], None]
"""Called after each chunk with (rows scored so far, total rows or ``None`` if unknown)."""

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
META_SUFFIX = ".meta.json"

Chunk = Callable[[], list[pa.RecordBatch]]
"""Reads one chunk of input when called (in a worker thread)."""


def format_of(path: Path, role: str) -> str:
    """``"csv"`` or ``"parquet"`` from the suffix of ``path`` (the ``role`` names it in errors)."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"The {role} file {str(path)!r} has suffix {path.suffix!r}; "
            f"allowed suffixes are {', '.join(sorted(_FORMATS))}."
        )
    return fmt


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _csv_types(signature: Signature) -> dict[str, pa.DataType]:
    """Fix feature column types so type inference on one block cannot differ from the next."""
    types: dict[str, pa.DataType] = {}
    for col in signature.inputs:
        if col.kind is ColumnKind.CATEGORICAL or col.kind is ColumnKind.TEXT:
            types[col.name] = pa.string()
        elif col.kind is ColumnKind.NUMERIC:
            types[col.name] = pa.float64()
    return types


def read_chunks(
    path: Path, fmt: str, signature: Signature, chunk_rows: int
) -> tuple[Iterator[Chunk], int | None]:
    """Lazy chunk readers over a CSV or Parquet file, and its row count when known."""
    if fmt == "parquet":
        meta = pq.ParquetFile(path).metadata

        def row_group(index: int) -> Chunk:
            def read() -> list[pa.RecordBatch]:
                table = pq.ParquetFile(path).read_row_group(index)
                return table.combine_chunks().to_batches(max_chunksize=chunk_rows) or [
                    pa.RecordBatch.from_pylist([], schema=table.schema)
                ]

            return read

        return (row_group(i) for i in range(meta.num_row_groups)), meta.num_rows
    stream = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=1 << 24),
        convert_options=pcsv.ConvertOptions(column_types=_csv_types(signature)),
    )

    def blocks() -> Iterator[Chunk]:
        for batch in stream:
            for start in range(0, batch.num_rows, chunk_rows):
                yield _ready(batch.slice(start, chunk_rows))

    return blocks(), None


def _ready(batch: pa.RecordBatch) -> Chunk:
    """A chunk already read."""
    return lambda: [batch]


class _Writer:
    """Writes scored batches as Parquet or CSV; the schema comes from the first batch."""

    def __init__(self, path: Path, fmt: str, metadata: dict[bytes, bytes]) -> None:
        self.path, self.fmt, self.metadata = path, fmt, metadata
        self._writer: Any = None
        self.schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self.fmt == "csv":
            batch = escape_formula_cells(batch)  # input columns are not ours: no formulas
        if self._writer is None:
            self.schema = batch.schema.with_metadata(self.metadata)
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.path, self.schema)
            else:
                self._writer = pcsv.CSVWriter(self.path, batch.schema)
        assert self.schema is not None
        if batch.schema.remove_metadata() != self.schema.remove_metadata():
            batch = batch.cast(self.schema.remove_metadata())
        self._writer.write_batch(batch.replace_schema_metadata(self.metadata))

    def close(self, schema: pa.Schema) -> None:
        """Finish the file; with no batch written, write an empty one of ``schema``."""
        if self._writer is None:
            self.write(pa.RecordBatch.from_pylist([], schema=schema))
        self.discard()

    def discard(self) -> None:
        """Close the underlying writer if open (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ChunkScorer:
    """Scores input batches into output batches: the input columns, the raw outputs and the
    post-processed ones (thread-safe: no shared mutable state)."""

    def __init__(
        self,
        predictor: Predictor,
        version: int,
        threshold: float,
        postprocessor: PostProcessor | None,
        source: Path,
    ) -> None:
        self.predictor, self.version, self.source = predictor, version, source
        self.signature = predictor.signature
        self.codec = self.signature.labels
        self.threshold = threshold
        self.post = postprocessor if postprocessor and not postprocessor.is_identity else None

    def __call__(self, chunk: Chunk) -> list[pa.RecordBatch]:
        return [self.score(batch) for batch in chunk()]

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        missing = [n for n in self.signature.names if n not in batch.schema.names]
        if missing:
            raise SchemaError(
                f"The input file {str(self.source)!r} lacks model input columns {missing}; "
                f"the model takes {self.signature.names}."
            )
        frame = batch.select(self.signature.names).to_pandas()
        outputs = read_outputs(
            self.predictor.predict_encoded(encode_frame(frame, self.signature)),
            self.codec,
            threshold=self.threshold,
        )
        n = batch.num_rows
        out_names, out_arrays = outputs.arrow_columns()
        arrays = [*batch.columns, *out_arrays, pa.array(np.full(n, self.version))]
        names = [*batch.schema.names, *out_names, "model_version"]
        if self.post is not None:
            result = self.post.apply(outputs, batch)
            withheld = result.withheld
            arrays += [
                pa.array(result.scores, mask=withheld),
                self.post.label_array(result.labels, withheld, self.codec),
                pa.array(withheld),
                pa.array(result.reasons.tolist(), pa.string()),
            ]
            names += ["post_score", "post_label", "withheld", "reason"]
            if result.ranks is not None:
                arrays.append(pa.array(result.ranks))
                names.append("rank")
        return pa.RecordBatch.from_arrays(arrays, names=names)


def score_file(
    predictor: Predictor,
    input_path: Path,
    output_path: Path,
    *,
    chunk_rows: int = 100_000,
    threshold: float = 0.5,
    version: int,
    progress: Progress | None = None,
    workers: int | None = None,
    postprocessor: PostProcessor | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Score every row of ``input_path`` and write the result to ``output_path``.

    Parameters
    ----------
    predictor : Predictor
        The model; its signature names the columns the input must have.
    input_path, output_path : Path
        ``.csv`` or ``.parquet`` each; the output format follows the output suffix.
    chunk_rows : int
        Rows read, scored and written at a time (bounds memory).
    threshold : float
        Binary tasks label a row 1 when its score is at or above this.
    version : int
        The model version, written in column ``model_version``.
    progress : callable, optional
        Called after each chunk with (rows done, total rows or ``None``).
    workers : int, optional
        Scoring threads (default: every core).
    postprocessor : PostProcessor, optional
        The project's post-processing chain; adds the ``post_*`` columns.
    model_name : str, optional
        Recorded in the output metadata.

    Returns
    -------
    dict
        ``{"rows", "input_sha256", "output", "model_version"}``.

    Raises
    ------
    NotFoundError
        If ``input_path`` does not exist.
    InvalidInputError
        If a file has an unsupported suffix or the input cannot be read.
    SchemaError
        If the input lacks a column the model takes.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    for name, value in (("chunk_rows", chunk_rows), ("workers", workers or 1)):
        if not isinstance(value, int) or value < 1:
            raise InvalidInputError(
                f"The '{name}' parameter of score_file() must be an int in [1, inf). "
                f"Got {value!r} instead."
            )
    if not input_path.is_file():
        raise NotFoundError(f"The input file {str(input_path)!r} does not exist.")
    format_of(input_path, "input"), format_of(output_path, "output")  # refuse before any write
    threads = workers or os.cpu_count() or 1
    output_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_path.parent)
    meta_path = output_path.with_name(output_path.name + META_SUFFIX)
    with locked_temporary(output_path) as tmp, locked_temporary(meta_path) as meta_tmp:
        return _score_into(
            predictor,
            input_path,
            (output_path, tmp),
            (meta_path, meta_tmp),
            chunk_rows=chunk_rows,
            threshold=threshold,
            version=version,
            progress=progress,
            threads=threads,
            postprocessor=postprocessor,
            model_name=model_name,
        )


def _score_into(
    predictor: Predictor,
    input_path: Path,
    output: tuple[Path, Path],
    meta: tuple[Path, Path],
    *,
    chunk_rows: int,
    threshold: float,
    version: int,
    progress: Progress | None,
    threads: int,
    postprocessor: PostProcessor | None,
    model_name: str | None,
) -> dict[str, Any]:
    """Score into the temporary ``output[1]`` and rename it onto ``output[0]`` (sidecar: meta)."""
    (output_path, tmp), (meta_path, meta_tmp) = output, meta
    in_fmt, out_fmt = format_of(input_path, "input"), format_of(output_path, "output")
    scorer = ChunkScorer(predictor, version, threshold, postprocessor, input_path)
    rows = 0
    writer: _Writer | None = None
    with ThreadPoolExecutor(max_workers=threads + 1, thread_name_prefix="score") as pool:
        digest = pool.submit(_sha256, input_path)
        try:
            chunks, total = read_chunks(input_path, in_fmt, predictor.signature, chunk_rows)
            info = {"model_name": model_name, "model_version": version, "input": str(input_path)}
            pending: collections.deque[Future[list[pa.RecordBatch]]] = collections.deque()
            last_schema: pa.Schema | None = None

            def drain(limit: int) -> None:
                nonlocal rows, writer, last_schema
                while len(pending) > limit:
                    for out in pending.popleft().result():
                        if writer is None:
                            meta = {**info, "input_sha256": digest.result()}
                            writer = _Writer(tmp, out_fmt, {b"conveyor": orjson.dumps(meta)})
                        writer.write(out)
                        last_schema = out.schema
                        rows += out.num_rows
                        if progress is not None:
                            progress(rows, total)

            for chunk in chunks:
                pending.append(pool.submit(scorer, chunk))
                drain(2 * threads)
            drain(0)
            input_sha256 = digest.result()
            if writer is None:
                writer = _Writer(tmp, out_fmt, {b"conveyor": orjson.dumps(info)})
            writer.close(last_schema or _empty_output_schema(predictor.signature))
            sidecar = {
                **info,
                "input_sha256": input_sha256,
                "rows": rows,
                "output": str(output_path),
                "scored_at": utcnow().isoformat(),
                "postprocess": postprocessor.spec.model_dump(mode="json")
                if postprocessor is not None
                else None,
            }
            meta_tmp.write_bytes(orjson.dumps(sidecar, option=orjson.OPT_INDENT_2))
            os.replace(meta_tmp, meta_path)
            os.replace(tmp, output_path)
        except pa.ArrowException as exc:
            raise InvalidInputError(
                f"The input file {str(input_path)!r} could not be read as {in_fmt}: {exc}"
            ) from exc
        finally:
            for future in pending if "pending" in locals() else ():
                future.cancel()
            if writer is not None:
                writer.discard()
    return {
        "rows": rows,
        "input_sha256": input_sha256,
        "output": str(output_path),
        "model_version": version,
    }


def read_output_metadata(path: Path) -> dict[str, Any]:
    """The ``conveyor`` metadata of a scored Parquet file (model version, input checksum).

    Raises
    ------
    InvalidInputError
        If the file carries no Conveyor metadata.
    """
    meta = pq.read_schema(path).metadata or {}
    if b"conveyor" not in meta:
        raise InvalidInputError(f"The file {str(path)!r} was not written by batch scoring.")
    found: dict[str, Any] = orjson.loads(meta[b"conveyor"])
    return found


def _empty_output_schema(signature: Signature) -> pa.Schema:
    fields = [
        pa.field(c.name, pa.string() if c.kind is ColumnKind.CATEGORICAL else pa.float64())
        for c in signature.inputs
    ]
    codec = signature.labels
    outputs = [("score", pa.float64()), ("label", label_arrow_type(codec))]
    if codec.task is Task.MULTICLASS:
        outputs += [(f"proba_{label_text(c)}", pa.float64()) for c in codec.classes]
    return pa.schema([*fields, *outputs, ("model_version", pa.int64())])
