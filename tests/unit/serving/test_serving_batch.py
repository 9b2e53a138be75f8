from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import InvalidInputError, NotFoundError, SchemaError
from conveyor.core.signature import encode_frame
from conveyor.serving.batch import score_file


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 1_000
    return pd.DataFrame(
        {
            "flight_id": np.arange(n),
            "distance": rng.uniform(100, 3000, n).round(1),
            "hour": rng.integers(0, 24, n).astype(float),
            "carrier": rng.choice(["AA", "DL", "UA", "ZZ"], n),
            "weekend": rng.random(n) < 0.3,
        }
    )


def test_csv_in_parquet_out_matches_the_model(tmp_path, frame, predictor, signature):
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    seen: list[tuple[int, int | None]] = []
    result = score_file(
        predictor,
        source,
        tmp_path / "out" / "scored.parquet",
        chunk_rows=300,
        version=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result == {
        "rows": 1000,
        "input_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "output": str(tmp_path / "out" / "scored.parquet"),
        "model_version": 4,
    }
    assert [done for done, _ in seen] == [300, 600, 900, 1000]
    out = pd.read_parquet(tmp_path / "out" / "scored.parquet")
    assert list(out.columns) == [*frame.columns, "score", "label", "model_version"]
    expected = predictor.predict_encoded(encode_frame(frame, signature))
    np.testing.assert_allclose(out["score"], expected)
    assert out["label"].tolist() == (expected >= 0.5).astype(int).tolist()
    assert (out["model_version"] == 4).all()
    assert out["flight_id"].tolist() == frame["flight_id"].tolist()


def test_parquet_in_csv_out_with_threshold(tmp_path, frame, predictor, signature):
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    score_file(predictor, source, tmp_path / "out.csv", version=1, threshold=0.9, chunk_rows=128)
    out = pd.read_csv(tmp_path / "out.csv")
    expected = predictor.predict_encoded(encode_frame(frame, signature))
    np.testing.assert_allclose(out["score"], expected, rtol=1e-12)
    assert out["label"].tolist() == (expected >= 0.9).astype(int).tolist()
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_input_is_not_found(tmp_path, predictor):
    with pytest.raises(NotFoundError, match="does not exist"):
        score_file(predictor, tmp_path / "nope.csv", tmp_path / "out.parquet", version=1)


def test_unreadable_input_is_invalid_and_leaves_no_output(tmp_path, predictor):
    source = tmp_path / "broken.parquet"
    source.write_bytes(b"this is not parquet")
    with pytest.raises(InvalidInputError, match="could not be read as parquet"):
        score_file(predictor, source, tmp_path / "out.parquet", version=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.parquet"]


def test_missing_model_column_is_a_schema_error(tmp_path, frame, predictor):
    source = tmp_path / "in.csv"
    frame.drop(columns=["carrier"]).to_csv(source, index=False)
    with pytest.raises(SchemaError, match=r"lacks model input columns \['carrier'\]"):
        score_file(predictor, source, tmp_path / "out.parquet", version=1)
    assert not (tmp_path / "out.parquet").exists()


def test_unsupported_suffix_is_invalid(tmp_path, frame, predictor):
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    with pytest.raises(InvalidInputError, match="suffix '.xlsx'"):
        score_file(predictor, source, tmp_path / "out.xlsx", version=1)


def test_empty_csv_writes_an_empty_output(tmp_path, frame, predictor):
    source = tmp_path / "in.csv"
    frame.head(0).to_csv(source, index=False)
    result = score_file(predictor, source, tmp_path / "out.parquet", version=1)
    assert result["rows"] == 0
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 0
