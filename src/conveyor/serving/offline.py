"""Offline predictions: precomputed outputs for every entity of a dataset, served by key.

:func:`build_offline` scores a dataset (a file, or the project's accepted batches) in chunks with
the same scorer and post-processing chain as batch scoring, and upserts one entry per entity key
into a key-value table; with several rows per key, the last one in input order wins. An entry
holds the raw score and label, the post-processed output, the model version and when it was
computed. Each chunk is written in one transaction (SQLite, PostgreSQL) or one pipeline
(Redis), so an entry is always whole.

Tables, by URL: see :mod:`conveyor.serving.offline_store`.

Serving (:func:`lookup_routes`): ``GET /v1/lookup/{key}`` answers a fresh entry (200, ``"source":
"offline"``) or 404 with ``"status": "miss"`` or ``"stale"`` (older than ``max_age_s``).
``POST /v1/lookup`` takes ``{"keys": [...]}`` and/or ``{"records": [{<key>: ..., features...}]}``:
each key is answered from the table when fresh; a record whose key misses or is stale is scored
live by the served model (``"source": "live"``, logged in the prediction log like any online
prediction), and a bare key that misses is reported (``"source": "miss"``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
import pandas as pd
import pyarrow as pa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.core.errors import InvalidInputError, SchemaError, StoreError
from conveyor.core.model import Predictor
from conveyor.serving.batch import ChunkScorer, format_of, read_chunks
from conveyor.serving.offline_store import (
    OfflineEntry,
    OfflineStore,
    key_text,
    open_offline_store,
)
from conveyor.serving.postprocess import PostProcessor
from conveyor.serving.predlog import PredictionLogWriter, iso_now
from conveyor.serving.slot import ModelSlot

__all__ = [
    "OfflineEntry",
    "OfflineStore",
    "build_offline",
    "key_text",
    "lookup_routes",
    "open_offline_store",
]

Progress = Callable[[int, int | None], None]


def _outputs(out: pa.RecordBatch) -> list[dict[str, Any]]:
    """JSON-ready outputs of a scored batch (see :class:`~conveyor.serving.batch.ChunkScorer`)."""
    cols = {n: out.column(n).to_pylist() for n in out.schema.names}
    has_post = "post_score" in cols
    probas = [n for n in out.schema.names if n.startswith("proba_")]
    rows = []
    for i in range(out.num_rows):
        row: dict[str, Any] = {"score": cols["score"][i], "label": cols["label"][i]}
        if probas:
            row["probabilities"] = {c.removeprefix("proba_"): cols[c][i] for c in probas}
        if has_post:
            post = {
                "score": cols["post_score"][i],
                "label": cols["post_label"][i],
                "withheld": cols["withheld"][i],
            }
            if cols["withheld"][i]:
                post["reason"] = cols["reason"][i]
            if "rank" in cols:
                post["rank"] = cols["rank"][i]
            row["post"] = post
        rows.append(row)
    return rows


def build_offline(
    predictor: Predictor,
    source: Path | pd.DataFrame,
    store: OfflineStore,
    *,
    key: str,
    version: int,
    threshold: float = 0.5,
    postprocessor: PostProcessor | None = None,
    chunk_rows: int = 50_000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Precompute a prediction for every entity of ``source`` into ``store``.

    Parameters
    ----------
    predictor : Predictor
        The model; its signature names the columns ``source`` must have.
    source : Path or DataFrame
        A CSV/Parquet file or a frame holding ``key`` and the model's inputs.
    store : OfflineStore
        The table (see :func:`open_offline_store`).
    key : str
        The entity column that keys the table.
    version : int
        The model version, recorded with every entry.
    threshold, postprocessor
        As for batch scoring; the entry holds the raw and the post-processed output.
    chunk_rows : int
        Rows scored and written per transaction.
    progress : callable, optional
        Called after each chunk with (rows done, total rows or ``None``).

    Returns
    -------
    dict
        ``{"rows", "keys", "model_version", "built_at", "build_id"}``.

    Raises
    ------
    SchemaError
        If ``source`` lacks ``key`` or a model input.
    """
    scorer = ChunkScorer(predictor, version, threshold, postprocessor, Path("<frame>"))
    batches, total = _source_batches(source, predictor, chunk_rows)
    rows, keys = 0, 0
    built_at = time.time()
    for batch in batches:
        if key not in batch.schema.names:
            raise SchemaError(
                f"The offline source lacks the key column {key!r}; it has {batch.schema.names}."
            )
        out = scorer.score(batch)
        latest: dict[str, OfflineEntry] = {}
        for value, output in zip(batch.column(key).to_pylist(), _outputs(out), strict=True):
            if value is None:
                continue
            k = key_text(value)
            latest[k] = OfflineEntry(k, output, version, built_at)
        store.put_many(list(latest.values()))
        rows += batch.num_rows
        keys += len(latest)
        if progress is not None:
            progress(rows, total)
    return {
        "rows": rows,
        "keys": store.count(),
        "model_version": version,
        "built_at": built_at,
        "build_id": uuid.uuid4().hex,
    }


def _source_batches(
    source: Path | pd.DataFrame, predictor: Predictor, chunk_rows: int
) -> tuple[Iterable[pa.RecordBatch], int | None]:
    if isinstance(source, pd.DataFrame):
        table = pa.Table.from_pandas(source, preserve_index=False)
        return table.to_batches(max_chunksize=chunk_rows), table.num_rows
    path = Path(source)
    chunks, total = read_chunks(path, format_of(path, "input"), predictor.signature, chunk_rows)

    def read() -> Iterator[pa.RecordBatch]:
        for chunk in chunks:
            yield from chunk()

    return read(), total


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


class _Lookup:
    """Answers lookups from the table, falling back to the served model."""

    def __init__(
        self,
        store: OfflineStore,
        key: str,
        max_age_s: float,
        slot: ModelSlot | None,
        log: PredictionLogWriter | None,
        postprocessor: PostProcessor | None,
        threshold: float,
    ) -> None:
        self.store, self.key, self.max_age_s = store, key, max_age_s
        self.slot, self.log, self.threshold = slot, log, threshold
        self.post = postprocessor if postprocessor and not postprocessor.is_identity else None
        self.hits = self.stale = self.misses = self.live = 0

    def from_table(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found = self.store.get_many(list(keys))
        now = time.time()
        answers: dict[str, dict[str, Any]] = {}
        for k in keys:
            entry = found.get(k)
            if entry is None:
                self.misses += 1
                answers[k] = {"key": k, "source": "miss", "status": "miss"}
                continue
            age = entry.age_s(now)
            if age > self.max_age_s:
                self.stale += 1
                answers[k] = {"key": k, "source": "miss", "status": "stale", "age_s": age}
                continue
            self.hits += 1
            answers[k] = {
                "key": k,
                "source": "offline",
                "model_version": entry.model_version,
                "age_s": round(age, 3),
                **entry.output,
            }
        return answers

    def score_live(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model = self.slot.model if self.slot is not None else None
        if model is None:
            raise _Unavailable("no model is loaded to score misses live")
        names = set(model.predictor.signature.names)
        batch = model.validator.validate(
            [r if self.key in names else {k: v for k, v in r.items() if k != self.key}
             for r in records]
        )  # fmt: skip
        if batch.errors:
            raise InvalidInputError(orjson.dumps(batch.errors).decode())
        started = time.perf_counter()
        outputs = model.outputs(model.predictor.predict_encoded(batch.matrix), self.threshold)
        post = self.post.apply(outputs, records).outputs() if self.post is not None else None
        answers = []
        entries = []
        ts = iso_now()
        latency = round((time.perf_counter() - started) * 1000.0, 3)
        for rid, rec, output, fields, i in zip(
            batch.request_ids,
            records,
            outputs.answers(),
            outputs.log_fields(),
            range(len(records)),
            strict=True,
        ):
            answer: dict[str, Any] = {
                "key": key_text(rec.get(self.key)),
                "source": "live",
                "model_version": model.version,
                "request_id": rid,
                **output,
            }
            if post is not None:
                answer["post"] = post[i]
            answers.append(answer)
            entry = {
                "request_id": rid,
                "ts": ts,
                "model_version": model.version,
                "inputs": rec,
                **fields,
                "latency_ms": latency,
            }
            if post is not None:
                entry["post"] = post[i]
            entries.append(entry)
        if self.log is not None:
            self.log.write(entries)  # logged before it is answered
        self.live += len(records)
        return answers

    def answer(self, payload: Any) -> list[dict[str, Any]]:
        if not isinstance(payload, Mapping) or not set(payload) <= {"keys", "records"}:
            raise InvalidInputError('the body must be {"keys": [...]} and/or {"records": [...]}')
        keys = payload.get("keys") or []
        records = payload.get("records") or []
        if not isinstance(keys, list) or not isinstance(records, list):
            raise InvalidInputError('"keys" and "records" must be lists')
        bad = [i for i, r in enumerate(records) if not isinstance(r, Mapping) or self.key not in r]
        if bad:
            raise InvalidInputError(f"records {bad[:20]} lack the key field {self.key!r}")
        record_keys = [key_text(r[self.key]) for r in records]
        texts = [key_text(k) for k in keys]
        answers = self.from_table(list(dict.fromkeys(texts + record_keys)))
        misses = [
            dict(r)
            for r, k in zip(records, record_keys, strict=True)
            if answers[k]["source"] != "offline"
        ]
        live = {a["key"]: a for a in self.score_live(misses)} if misses else {}
        return [answers[k] for k in texts] + [live.get(k, answers[k]) for k in record_keys]


class _Unavailable(Exception):
    pass


def lookup_routes(
    store: OfflineStore,
    *,
    key: str,
    max_age_s: float,
    slot: ModelSlot | None = None,
    log: PredictionLogWriter | None = None,
    postprocessor: PostProcessor | None = None,
    threshold: float = 0.5,
    prefix: str = "/v1",
) -> list[Route]:
    """``GET {prefix}/lookup/{key}`` and ``POST {prefix}/lookup`` (see the module docstring).

    Parameters
    ----------
    store : OfflineStore
        The precomputed table.
    key : str
        The entity field that keys it (and that lookup records carry).
    max_age_s : float
        Entries older than this are stale: missed, and scored live when a record is given.
    slot, log : optional
        The served model and the prediction log, for live fallback (without a slot a miss
        with features answers 503).
    postprocessor, threshold
        As online; live answers carry the same ``post`` output as table entries.
    """
    lookup = _Lookup(store, key, max_age_s, slot, log, postprocessor, threshold)

    async def one(request: Request) -> Response:
        k = request.path_params["key"]
        try:
            answer = (await anyio.to_thread.run_sync(lookup.from_table, [k]))[k]
        except StoreError as exc:
            return _json({"error": str(exc)}, 503)
        return _json(answer, 200 if answer["source"] == "offline" else 404)

    async def many(request: Request) -> Response:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"request body is not valid JSON: {exc}"}, 400)
        try:
            answers = await anyio.to_thread.run_sync(lookup.answer, payload)
        except InvalidInputError as exc:
            return _json({"error": str(exc)}, 422)
        except (StoreError, _Unavailable) as exc:
            return _json({"error": str(exc)}, 503)
        return _json({"results": answers})

    async def stats(request: Request) -> Response:
        return _json(
            {
                "hits": lookup.hits,
                "stale": lookup.stale,
                "misses": lookup.misses,
                "live": lookup.live,
            }  # fmt: skip
        )

    return [
        Route(f"{prefix}/lookup/{{key}}", one, methods=["GET"]),
        Route(f"{prefix}/lookup", many, methods=["POST"]),
        Route(f"{prefix}/lookup-stats", stats, methods=["GET"]),
    ]
