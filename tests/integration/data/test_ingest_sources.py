"""Every source kind ingests; identical data is one version; large inputs stream; bad ones fail."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from conveyor.core.clock import new_id
from conveyor.core.entities import BatchStatus, DatasetVersionId
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.data.service import ingest_batch, load_content, load_versions
from conveyor.data.sources import SqlQuery
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

from ..conftest import make_batch


def _blobs(ws: Workspace) -> set[str]:
    return {digest for digest, _, _ in ws.stores.artifacts.list_blobs()}


def _leftovers(ws: Workspace) -> list[Path]:
    return [p for p in Path(ws.home).iterdir() if p.name.startswith(".ingest-")]


def _sqlite_with(tmp_path: Path, frame: pd.DataFrame, table: str = "flights") -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    frame.assign(ts=frame["ts"].astype(str)).to_sql(table, engine, index=False)
    engine.dispose()
    return url


def test_identical_data_from_every_source_kind_is_one_version(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    frame = make_batch(0, rows=800)
    frame.to_csv(tmp_path / "w0.csv", index=False)
    frame.to_csv(tmp_path / "w0.csv.gz", index=False)
    (tmp_path / "parts").mkdir()
    frame.iloc[:500].to_parquet(tmp_path / "parts" / "a.parquet", index=False)
    frame.iloc[500:].to_parquet(tmp_path / "parts" / "b.parquet", index=False)
    frame.to_parquet(tmp_path / "w0.parquet", index=False)
    url = _sqlite_with(tmp_path, frame)
    first = ingest_batch(ws, spec, tmp_path / "w0.csv")
    assert first.created and first.version.status is BatchStatus.ACCEPTED
    again = [
        tmp_path / "w0.csv.gz",
        str(tmp_path / "w0.parquet"),
        tmp_path / "parts",
        str(tmp_path / "parts" / "*.parquet"),
        frame,
        pl.from_pandas(frame),
        pa.Table.from_pandas(frame),
        SqlQuery(url, "SELECT * FROM flights"),
    ]
    for source in again:
        result = ingest_batch(ws, spec, source, chunk_rows=300)
        assert not result.created, type(source)
        assert result.version.id == first.version.id, type(source)
    assert len(ws.stores.datasets.list_dataset_versions(spec.project)) == 1
    stored = load_content(ws, first.version)
    pd.testing.assert_frame_equal(stored, pa.Table.from_pandas(frame).to_pandas()[stored.columns])


def test_same_values_in_other_arrow_representations_are_one_version(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    frame = make_batch(0, rows=800)
    frame.to_csv(tmp_path / "w0.csv", index=False)
    first = ingest_batch(ws, spec, tmp_path / "w0.csv")
    categorical = frame.assign(carrier=frame["carrier"].astype("category"))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    large = table.cast(
        pa.schema(
            [
                pa.field(f.name, pa.large_string() if f.type == pa.string() else f.type)
                for f in table.schema
            ]
        )
    )
    again = [
        categorical,
        pl.from_pandas(frame).with_columns(pl.col("carrier").cast(pl.Categorical)),
        large,
    ]
    for source in again:
        result = ingest_batch(ws, spec, source, chunk_rows=300)
        assert result.version.id == first.version.id, source.__class__


def test_batches_stored_with_dictionary_text_still_load_with_newer_ones(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    first = ingest_batch(ws, spec, make_batch(0, rows=800)).version
    older = make_batch(1, rows=300)
    legacy = pa.Table.from_pandas(older.assign(carrier=older["carrier"].astype("category")))
    pq.write_table(legacy.replace_schema_metadata(), tmp_path / "legacy.parquet")
    digest = ws.stores.artifacts.put_file(tmp_path / "legacy.parquet")
    stored = ws.stores.datasets.add_dataset_version(
        dataclasses.replace(first, id=DatasetVersionId(new_id("ds_")), digest=digest, row_count=300)
    )
    frame = load_versions(ws, [first, stored])
    assert len(frame) == 1100
    assert frame["carrier"].iloc[800:].tolist() == older["carrier"].tolist()


def test_canonical_batch_is_written_with_pinned_options(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    frame = make_batch(0, rows=800)
    result = ingest_batch(ws, spec, frame)
    meta = pq.ParquetFile(ws.stores.artifacts.local_path(result.version.digest)).metadata
    assert meta.format_version == "2.6"
    assert not meta.metadata or set(meta.metadata) == {b"ARROW:schema"}
    column = meta.row_group(0).column(0)
    assert column.compression == "ZSTD" and column.is_stats_set


def test_chunked_ingest_stores_the_same_content_and_merges_profiles(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    frame = make_batch(1, rows=2000)
    frame.to_csv(tmp_path / "w1.csv", index=False)
    whole = ingest_batch(ws, spec, tmp_path / "w1.csv")
    other = Workspace.open(ws.settings.model_copy(update={"home": tmp_path / "ws2"}))
    chunked = ingest_batch(other, spec, tmp_path / "w1.csv", chunk_rows=150)
    assert chunked.version.digest == whole.version.digest
    assert chunked.version.row_count == 2000
    assert (chunked.version.min_time, chunked.version.max_time) == (
        whole.version.min_time,
        whole.version.max_time,
    )
    distance = chunked.version.profile["columns"]["distance"]
    assert distance["count"] == 2000
    assert distance["mean"] == pytest.approx(frame["distance"].mean(), rel=1e-9)
    assert sum(distance["histogram"]["counts"]) == 2000
    carriers = chunked.version.profile["columns"]["carrier"]["values"]
    assert sum(carriers.values()) == 2000
    assert carriers["B6"] == int((frame["carrier"] == "B6").sum())


def test_an_anomaly_in_one_chunk_quarantines_the_batch_once(
    ws: Workspace, spec: ProjectSpec
) -> None:
    ingest_batch(ws, spec, make_batch(0, rows=600))
    bad = make_batch(1, rows=1200)
    bad.loc[1000:1010, "distance"] = float("nan")
    result = ingest_batch(ws, spec, bad, chunk_rows=250)
    assert result.quarantined
    nan = [a for a in result.report.anomalies if a.column == "distance"]
    assert len(nan) == 1 and nan[0].details["chunks"] == 5
    assert nan[0].details["chunks_with_anomaly"] == 1


def test_types_that_widen_across_chunks_are_unified(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    frame = make_batch(2, rows=600)
    text = frame.to_csv(index=False).splitlines()
    # The hour column is integral in the first rows and fractional later on.
    frame["hour"] = frame["hour"].round()
    frame.loc[500:, "hour"] = frame.loc[500:, "hour"] + 0.5
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    assert text
    result = ingest_batch(ws, spec, tmp_path / "mixed.csv", chunk_rows=100)
    stored = pq.read_table(ws.stores.artifacts.local_path(result.version.digest))
    assert stored.schema.field("hour").type == pa.float64()
    assert stored.column("hour").to_pylist()[550] == frame.loc[550, "hour"]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.csv", b"a,b,late\n1,2,0\n3,4,1,9,9\n", "could not be read"),
        ("bad.parquet", b"PAR1 this is not parquet", "could not be read"),
        ("bad.txt", b"x", "suffix"),
    ],
)
def test_corrupt_files_fail_clearly_and_write_nothing(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = _blobs(ws)
    with pytest.raises(InvalidInputError, match=needle) as caught:
        ingest_batch(ws, spec, path)
    assert name in str(caught.value)
    assert ws.stores.datasets.list_dataset_versions(spec.project) == []
    assert _blobs(ws) == before and _leftovers(ws) == []


def test_a_truncated_parquet_file_fails_and_writes_nothing(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    good = tmp_path / "good.parquet"
    make_batch(0, rows=500).to_parquet(good, index=False)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match="truncated.parquet"):
        ingest_batch(ws, spec, truncated)
    assert ws.stores.datasets.list_dataset_versions(spec.project) == []
    assert _blobs(ws) == set() and _leftovers(ws) == []


def test_missing_paths_and_empty_globs_are_not_found(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        ingest_batch(ws, spec, tmp_path / "nope.csv")
    with pytest.raises(NotFoundError, match="matches no file"):
        ingest_batch(ws, spec, str(tmp_path / "*.parquet"))


@pytest.mark.parametrize(
    ("query", "needle"),
    [("SELEC * FROM flights", "syntax error"), ("SELECT * FROM no_such_table", "no_such_table")],
)
def test_bad_sql_fails_clearly(
    ws: Workspace, spec: ProjectSpec, tmp_path: Path, query: str, needle: str
) -> None:
    url = _sqlite_with(tmp_path, make_batch(0, rows=50))
    with pytest.raises(InvalidInputError, match=needle):
        ingest_batch(ws, spec, SqlQuery(url, query))
    assert ws.stores.datasets.list_dataset_versions(spec.project) == []


def test_a_bad_sql_url_fails_clearly(ws: Workspace, spec: ProjectSpec) -> None:
    with pytest.raises(InvalidInputError, match="SQLAlchemy URL"):
        ingest_batch(ws, spec, SqlQuery("nosuchdb://x/y", "SELECT 1"))


@pytest.mark.postgres
def test_sql_source_streams_from_postgresql(
    ws: Workspace, spec: ProjectSpec, pg_url: str, tmp_path: Path
) -> None:
    frame = make_batch(3, rows=900)
    frame["ts"] = frame["ts"].dt.floor("us")  # PostgreSQL keeps microseconds
    engine = sa.create_engine(pg_url)
    frame.to_sql("flights", engine, index=False)
    engine.dispose()
    result = ingest_batch(
        ws, spec, SqlQuery(pg_url, "SELECT * FROM flights ORDER BY ts"), chunk_rows=200
    )
    assert result.created and result.version.row_count == 900
    assert result.version.source.startswith("sql:postgresql")
    frame.sort_values("ts").to_csv(tmp_path / "same.csv", index=False)
    assert not ingest_batch(ws, spec, tmp_path / "same.csv").created
    with pytest.raises(InvalidInputError, match="no_such_table"):
        ingest_batch(ws, spec, SqlQuery(pg_url, "SELECT * FROM no_such_table"))


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from pathlib import Path
    import pandas as pd
    import pyarrow as pa
    from conveyor.config import Settings
    from conveyor.data.service import ingest_batch
    from conveyor.spec import parse_spec
    from conveyor.workspace import Workspace

    path, home, mode, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    spec = parse_spec(json.loads(sys.argv[5]))
    ws = Workspace.open(Settings(home=Path(home)))
    tracemalloc.start()
    if mode.startswith("whole"):
        frame = pd.read_csv(path)
        print(json.dumps({"rows": len(frame), "peak": int(frame.memory_usage(deep=True).sum())}))
        sys.exit(0)
    rows = ingest_batch(ws, spec, path, chunk_rows=chunk).version.row_count
    _, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"rows": rows, "peak": peak + pa.default_memory_pool().max_memory()}))
    """
)


def _peak(tmp_path: Path, csv: Path, mode: str, spec: ProjectSpec, chunk: int) -> dict[str, int]:
    doc = spec.model_dump(mode="json")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEMORY_PROBE,
            str(csv),
            str(tmp_path / mode),
            mode,
            str(chunk),
            json.dumps(doc),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_ingest_memory_is_bounded_by_the_chunk_not_the_file(
    spec: ProjectSpec, tmp_path: Path
) -> None:
    peaks = {}
    for weeks in (3, 12):
        csv = tmp_path / f"big-{weeks}.csv"
        frame = pd.concat([make_batch(w, rows=25_000) for w in range(weeks)], ignore_index=True)
        frame.to_csv(csv, index=False)
        peaks[weeks] = _peak(tmp_path, csv, f"chunked-{weeks}", spec, 10_000)
        assert peaks[weeks]["rows"] == weeks * 25_000
    whole = _peak(tmp_path, tmp_path / "big-12.csv", "whole", spec, 0)
    # Four times the rows (both beyond a row group), about the same peak of traced Python and
    # Arrow allocations: memory follows the chunk, not the file, and stays below the size of
    # the file's rows as a frame.
    assert peaks[12]["peak"] < 1.3 * peaks[3]["peak"], peaks
    assert peaks[12]["peak"] < whole["peak"], (peaks, whole)
