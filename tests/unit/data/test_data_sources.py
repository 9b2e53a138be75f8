"""Source recognition, chunking and type unification, without a workspace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.sources import SqlQuery, open_source, read_frame
from conveyor.data.staging import spool_source, unify_schemas, write_canonical

FRAME = pd.DataFrame({"x": range(7), "c": list("abcabca")})


@pytest.mark.parametrize(
    "source",
    [
        FRAME,
        pl.from_pandas(FRAME),
        pa.Table.from_pandas(FRAME, preserve_index=False),
        pa.RecordBatchReader.from_batches(
            pa.schema([("x", pa.int64()), ("c", pa.string())]),
            pa.Table.from_pandas(FRAME, preserve_index=False).to_batches(max_chunksize=4),
        ),
    ],
    ids=["pandas", "polars", "arrow", "arrow-stream"],
)
def test_in_memory_sources_stream_in_chunks(source: object) -> None:
    chunks = list(open_source(source, chunk_rows=3).chunks())
    assert all(len(c) <= 3 for c in chunks)
    joined = pd.concat(chunks, ignore_index=True)
    assert joined["x"].tolist() == list(range(7)) and joined["c"].tolist() == list("abcabca")


def test_files_globs_and_directories_are_read_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    FRAME.iloc[4:].to_parquet(tmp_path / "d" / "b.parquet", index=False)
    FRAME.iloc[:4].to_parquet(tmp_path / "d" / "a.parquet", index=False)
    for source in (tmp_path / "d", str(tmp_path / "d" / "*.parquet")):
        frame, _ = read_frame(source)
        assert frame["x"].tolist() == list(range(7))
    FRAME.to_csv(tmp_path / "f.csv.gz", index=False)
    reader = open_source(tmp_path / "f.csv.gz", chunk_rows=2)
    assert reader.kind == "csv" and [len(c) for c in reader.chunks()] == [2, 2, 2, 1]


def test_empty_sources_still_yield_their_columns(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("x,c\n")
    chunks = list(open_source(tmp_path / "e.csv").chunks())
    assert len(chunks) == 1 and list(chunks[0].columns) == ["x", "c"]


def test_bad_sources_are_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="holds no"):
        open_source(tmp_path)
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="mixes CSV and Parquet"):
        open_source(str(tmp_path / "*"))
    with pytest.raises(InvalidInputError, match="chunk_rows"):
        open_source(FRAME, chunk_rows=0)
    with pytest.raises(InvalidInputError, match="Got int instead"):
        open_source(42)
    with pytest.raises(InvalidInputError, match="empty"):
        open_source(SqlQuery("sqlite://", "  "))


def test_sql_descriptions_hide_the_password() -> None:
    text = SqlQuery("postgresql://me:secret@db/x", "SELECT 1").describe()
    assert "secret" not in text and text.startswith("sql:postgresql://me:***@db/x")


def test_chunk_types_unify_to_one_schema() -> None:
    schemas = [
        pa.schema([("a", pa.int64()), ("b", pa.null()), ("c", pa.int64()), ("d", pa.string())]),
        pa.schema([("a", pa.float64()), ("b", pa.string()), ("c", pa.string()), ("e", pa.bool_())]),
    ]
    unified = unify_schemas(schemas)
    assert unified.names == ["a", "b", "c", "d", "e"]
    assert [f.type for f in unified] == [
        pa.float64(),
        pa.string(),
        pa.string(),
        pa.string(),
        pa.bool_(),
    ]


def _canonical_bytes(tmp_path: Path, source: object, chunk_rows: int) -> bytes:
    spool = tmp_path / f"spool-{chunk_rows}"
    spool.mkdir()
    staged = spool_source(open_source(source, chunk_rows=chunk_rows), spool)
    write_canonical(staged, spool / "batch.parquet")
    return (spool / "batch.parquet").read_bytes()


def test_text_that_starts_as_numbers_is_stored_alike_however_chunked(tmp_path: Path) -> None:
    (tmp_path / "mixed.csv").write_text("code,n\n1,1.5\n2,2.5\nx7,3.25\n")
    whole = _canonical_bytes(tmp_path, tmp_path / "mixed.csv", 100)
    assert _canonical_bytes(tmp_path, tmp_path / "mixed.csv", 2) == whole
