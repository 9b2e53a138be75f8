from __future__ import annotations

import asyncio

import numpy as np
import pytest

from conveyor.core.clock import utcnow
from conveyor.core.signature import encode_records
from conveyor.monitoring.scrape import sample_value
from conveyor.serving.batching import BatchingConfig, MicroBatcher
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.slot import LoadedModel
from conveyor.serving.validation import RecordValidator


class CountingPredictor:
    """A real booster predictor that records the size of every predict call."""

    kind = "lightgbm"

    def __init__(self, inner, fail: bool = False) -> None:
        self.inner, self.signature, self.fail = inner, inner.signature, fail
        self.calls: list[int] = []

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        self.calls.append(len(matrix))
        if self.fail:
            raise RuntimeError("native failure")
        return self.inner.predict_encoded(matrix)


def loaded(predictor, version: int = 1) -> LoadedModel:
    return LoadedModel(version, predictor, RecordValidator(predictor.signature), utcnow())


@pytest.fixture
def rows(record, signature) -> np.ndarray:
    records = [record(distance=float(d), carrier=c) for d in (150, 900, 2500) for c in ("AA", "UA")]
    return encode_records(records, signature)


async def score_concurrently(batcher: MicroBatcher, model: LoadedModel, parts: list[np.ndarray]):
    async def one(part: np.ndarray) -> np.ndarray:
        batcher.arriving()
        await asyncio.sleep(0)
        batcher.arrived()
        try:
            return await batcher.score(model, part)
        finally:
            batcher.finished()

    return await asyncio.gather(*(one(p) for p in parts))


def test_concurrent_requests_share_one_predict_call_and_get_their_own_scores(predictor, rows):
    counting = CountingPredictor(predictor)
    metrics = ServingMetrics()
    batcher = MicroBatcher(BatchingConfig(), metrics)
    parts = [rows[i : i + 1] for i in range(len(rows))]
    results = asyncio.run(score_concurrently(batcher, loaded(counting), parts))
    assert counting.calls == [len(rows)]
    np.testing.assert_allclose(np.concatenate(results), predictor.predict_encoded(rows))
    page = metrics.render()
    assert sample_value(page, "conveyor_serving_batch_requests_bucket", le="1.0") == 0
    assert sample_value(page, "conveyor_serving_batch_requests_sum") == len(rows)
    assert sample_value(page, "conveyor_serving_batch_rows_sum") == len(rows)


def test_batching_off_scores_each_request_alone(predictor, rows):
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(BatchingConfig(enabled=False), ServingMetrics())
    parts = [rows[i : i + 2] for i in range(0, len(rows), 2)]
    results = asyncio.run(score_concurrently(batcher, loaded(counting), parts))
    assert counting.calls == [2, 2, 2]
    np.testing.assert_allclose(np.concatenate(results), predictor.predict_encoded(rows))


def test_a_batch_never_waits_past_max_batch_rows(predictor, rows):
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(BatchingConfig(max_batch_rows=2), ServingMetrics())
    parts = [rows[i : i + 1] for i in range(5)]
    asyncio.run(score_concurrently(batcher, loaded(counting), parts))
    assert counting.calls == [2, 2, 1]


def test_each_model_gets_its_own_call_and_large_requests_go_to_a_thread(predictors, rows):
    one, two = CountingPredictor(predictors[1]), CountingPredictor(predictors[2])
    batcher = MicroBatcher(BatchingConfig(inline_rows=3), ServingMetrics())

    async def main():
        models = [loaded(one, 1), loaded(two, 2)]
        small = [batcher.score(models[i % 2], rows[i : i + 1]) for i in range(4)]
        big = batcher.score(models[0], rows)
        return await asyncio.gather(*small, big)

    results = asyncio.run(main())
    assert sorted(one.calls) == [2, len(rows)] and two.calls == [2]
    np.testing.assert_allclose(results[1], predictors[2].predict_encoded(rows[1:2]))
    np.testing.assert_allclose(results[4], predictors[1].predict_encoded(rows))


def test_a_request_still_being_read_joins_the_batch_within_max_wait(predictor, rows):
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(BatchingConfig(max_wait_s=0.5), ServingMetrics())
    model = loaded(counting)

    async def late() -> np.ndarray:
        batcher.arriving()
        await asyncio.sleep(0.02)  # its body is still arriving
        batcher.arrived()
        return await batcher.score(model, rows[1:2])

    async def main():
        batcher.arriving()
        batcher.arrived()
        return await asyncio.gather(batcher.score(model, rows[0:1]), late())

    asyncio.run(main())
    assert counting.calls == [2]


def test_a_failing_predict_fails_every_request_of_its_batch(predictor, rows):
    batcher = MicroBatcher(BatchingConfig(), ServingMetrics())
    model = loaded(CountingPredictor(predictor, fail=True))

    async def main():
        return await asyncio.gather(
            *(batcher.score(model, rows[i : i + 1]) for i in range(3)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert [type(r) for r in results] == [RuntimeError] * 3


@pytest.mark.parametrize(
    ("field", "value"), [("max_batch_rows", 0), ("max_wait_s", -1.0), ("max_wait_s", 5.0)]
)
def test_batching_config_rejects_bad_limits(field, value):
    with pytest.raises(ValueError, match=f"'{field}' field of BatchingConfig"):
        BatchingConfig(**{field: value})
