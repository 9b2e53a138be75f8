"""Ground truth for logged predictions, joined by request id or by entity and time.

A feedback item is either ``{"request_id": ..., "label": ...}`` or
``{"entity": {"flight_id": 7, ...}, "time": "2024-05-01T10:00:00Z", "label": ...}``.
Items are appended as JSON lines (one ``os.write`` per :meth:`FeedbackLog.record` call) and
never rewritten.

Join rules (:func:`join_feedback`)
----------------------------------
- By request id: the label received last for a request id wins, so sending feedback twice
  never counts twice, and a correction replaces the earlier label. "Last" is by the time each
  item was received (``received_at``), then by its place in its file, so it holds whichever
  worker process received each label.
- By entity and time: the item labels the prediction whose logged inputs hold the same value
  for every entity field (compared as JSON text, so ``7`` matches ``7`` but not ``"7"``) and
  whose log time is the latest at or before ``time``. The entity fields must reach the log:
  serve with them as pass-through fields (``create_serving_app(passthrough=...)``).
- A prediction labelled both ways takes its request-id label; one labelled by several entity
  items takes the one recorded last.
- Labels whose request id is in no logged prediction are not dropped: the prediction may be
  logged later (or by a slower worker). They are accepted, stored and reported every time,
  alike on every path: ``FeedbackResult.unknown_ids`` of the call (also when the id was sent
  before: then it counts among ``duplicates`` too), ``frame.attrs["unknown_ids"]`` of a
  whole-log join and ``unknown_ids`` of :func:`live_metrics`, windowed or not.
- Labels are class VALUES (``"yes"``, ``"setosa"``, ``1``), checked against the model's
  classes when the log knows them (a binary log without them takes 0, 1, true and false; a
  regression, finite numbers; :func:`label_problem`), and encoded with the codec of the model
  version that made the prediction (:func:`task_truth`); a label stored anyway that is no class
  of that version is left out of the metrics and counted.

Recording scales with the size of a call, not of the log: request ids already labelled are kept
in a SQLite index beside the files (``ids.sqlite``, rebuilt from the files when missing), and
unknown ids are looked up in the prediction log by id only (:func:`find_logged_ids`).

Over HTTP (:func:`feedback_routes`): ``POST /v1/feedback`` takes ``{"items": [...]}``, a list of
items or one item, needs ``Authorization: Bearer <token>`` when the server has a token, and
answers 200 ``{"accepted", "duplicates", "unknown_ids"}``, or 422 naming the item and field
(nothing of the call is stored then); ``GET /v1/metrics/live`` answers the
realised metrics of each model version over the labelled predictions.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.core.clock import as_utc, utcnow
from conveyor.core.errors import ConveyorError, InvalidInputError
from conveyor.core.labels import LabelCodec, Task, label_key
from conveyor.evaluation.metrics import evaluate
from conveyor.serving.guards import BodyError, is_authorised, request_json
from conveyor.serving.predlog import (
    LOG_SCHEMA,
    expand_inputs,
    find_logged_ids,
    read_predictions,
)

FEEDBACK_GLOB = "fb-*.jsonl"
INDEX_NAME = "ids.sqlite"


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What one :meth:`FeedbackLog.record` call stored.

    Attributes
    ----------
    accepted : int
        Items written.
    duplicates : int
        Items whose request id already had a label (stored earlier or earlier in the same
        call); they replace it on read rather than add to it.
    unknown_ids : tuple of str
        Request ids found in no logged prediction (only checked when the log knows the
        prediction directory).
    """

    accepted: int
    duplicates: int
    unknown_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "unknown_ids": list(self.unknown_ids),
        }


def default_labels(task: str | None) -> LabelCodec | None:
    """The codec a task implies without a model: binary 0/1, regression, else none known."""
    if task == Task.BINARY:
        return LabelCodec(Task.BINARY, (0, 1))
    if task == Task.REGRESSION:
        return LabelCodec(Task.REGRESSION)
    return None


def label_problem(task: str | None, label: Any, labels: LabelCodec | None = None) -> str | None:
    """Why ``label`` cannot be ground truth, or ``None`` when it can.

    A classification label must be one of the classes of ``labels`` (the served model's codec;
    by default a binary task's are 0 and 1); a regression label is a finite number. Without a
    task or classes any number, boolean or string is kept.

    Examples
    --------
    >>> label_problem("binary", "banana")
    "'label' 'banana' is not a class of this binary label; classes: [0, 1]"
    >>> label_problem("binary", "yes", LabelCodec(Task.BINARY, ("no", "yes"))) is None
    True
    >>> label_problem("regression", 3.5) is None
    True
    """
    if label is None or isinstance(label, dict | list):
        return f"'label' must be a number, boolean or string, got {_short(label)}"
    if isinstance(label, float) and not math.isfinite(label):
        return f"'label' must be a finite number, got {label!r}"
    codec = labels or default_labels(task)
    if codec is None:
        return None
    if codec.task is Task.REGRESSION:
        if isinstance(label, bool | str):
            return f"'label' of a regression task must be a finite number, got {_short(label)}"
        return None
    if label_key(label) not in _class_index(codec):
        return (
            f"'label' {_short(label)} is not a class of this {codec.task} label; "
            f"classes: {list(codec.classes)}"
        )
    return None


def _class_index(codec: LabelCodec) -> dict[str, int]:
    return {label_key(c): i for i, c in enumerate(codec.classes)}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_item(
    position: int, item: Any, task: str | None = None, labels: LabelCodec | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(item, Mapping):
        return None, f"item {position}: expected an object, got {type(item).__name__}"
    label = item.get("label")
    problem = label_problem(task, label, labels)
    if problem is not None:
        return None, f"item {position}: {problem}"
    request_id = item.get("request_id")
    if request_id is not None:
        if not isinstance(request_id, str) or not request_id:
            return None, f"item {position}: 'request_id' must be a non-empty string"
        return {"request_id": request_id, "entity": None, "time": None, "label": label}, None
    entity, when = item.get("entity"), item.get("time")
    if not isinstance(entity, Mapping) or not entity:
        return None, (
            f"item {position}: needs a 'request_id', or an 'entity' object with a 'time'; "
            f"got keys {sorted(item)}"
        )
    try:
        parsed = as_utc(datetime.fromisoformat(when)) if isinstance(when, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return None, f"item {position}: 'time' must be an ISO-8601 time, got {when!r}"
    return {"request_id": None, "entity": dict(entity), "time": parsed.isoformat(),
            "label": label}, None  # fmt: skip


class FeedbackLog:
    """Append-only store of ground-truth labels.

    Parameters
    ----------
    directory : Path
        Where feedback files live; created when missing.
    predictions_dir : Path, optional
        The prediction log, to report labels for unknown request ids when recording.
    task : {"binary", "multiclass", "regression"}, optional
        The project's task: labels are checked against it (see :func:`label_problem`).
    labels : callable, optional
        Returns the served model's codec (or ``None`` when no model is known); labels of a
        classification are checked against its classes at every :meth:`record`.

    Examples
    --------
    >>> import tempfile
    >>> fb = FeedbackLog(Path(tempfile.mkdtemp()))
    >>> fb.record([{"request_id": "a", "label": 1}, {"request_id": "a", "label": 0}])
    FeedbackResult(accepted=2, duplicates=1, unknown_ids=())
    """

    def __init__(
        self,
        directory: Path,
        *,
        predictions_dir: Path | None = None,
        task: str | None = None,
        labels: Callable[[], LabelCodec | None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.predictions_dir = Path(predictions_dir) if predictions_dir is not None else None
        self.task = task
        self.labels = labels
        self._lock = threading.Lock()

    def record(self, items: Sequence[Mapping[str, Any]]) -> FeedbackResult:
        """Store ``items``, all or none.

        Raises
        ------
        InvalidInputError
            If any item is malformed; the message lists every bad item and nothing is stored.
        """
        rows, problems = [], []
        codec = self.labels() if self.labels is not None else None
        for position, item in enumerate(items):
            row, problem = _check_item(position, item, self.task, codec)
            if problem is not None:
                problems.append(problem)
            elif row is not None:
                rows.append(row)
        if problems:
            raise InvalidInputError(
                f"{len(problems)} of {len(items)} feedback items are invalid: "
                + "; ".join(problems[:20])
            )
        if not rows:
            return FeedbackResult(0, 0)
        received = utcnow().isoformat()
        data = b"".join(
            orjson.dumps({**row, "received_at": received}, option=orjson.OPT_APPEND_NEWLINE)
            for row in rows
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"fb-{os.getpid()}.jsonl"
        ids = [r["request_id"] for r in rows if r["request_id"] is not None]
        with self._lock:
            index = self._index()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                duplicates = _add_ids(index, ids)
            finally:
                index.close()
        return FeedbackResult(len(rows), duplicates, self._unknown(ids))

    def _index(self) -> sqlite3.Connection:
        """The index of labelled request ids, built from the files when missing."""
        path = self.directory / INDEX_NAME
        fresh = not path.exists()
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS ids (request_id TEXT PRIMARY KEY) WITHOUT ROWID")
        if fresh:
            stored = read_feedback_table(self.directory)["request_id"].to_pylist()
            _add_ids(con, [i for i in stored if i])
        return con

    def _unknown(self, ids: Sequence[str]) -> tuple[str, ...]:
        if self.predictions_dir is None or not ids:
            return ()
        logged = find_logged_ids(self.predictions_dir, ids)
        return tuple(sorted(set(ids) - logged))


def _add_ids(con: sqlite3.Connection, ids: Sequence[str]) -> int:
    """Insert ``ids`` in one transaction; return how many were there already (or repeated)."""
    if not ids:
        return 0
    con.execute("BEGIN IMMEDIATE")
    try:
        before = con.total_changes
        con.executemany("INSERT OR IGNORE INTO ids VALUES (?)", [(i,) for i in ids])
        inserted = con.total_changes - before
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(ids) - inserted


_FEEDBACK_COLUMNS = (
    "{'request_id': 'VARCHAR', 'entity': 'JSON', 'time': 'VARCHAR', 'label': 'JSON', "
    "'received_at': 'VARCHAR'}"
)


def read_feedback_table(directory: Path) -> pa.Table:
    """Every stored feedback item in the order it was received: ``request_id, entity, time,
    label`` (JSON text), ``received_at`` and ``seq``; a torn trailing line is skipped.

    ``seq`` numbers the items by ``received_at``, then by their place in their file, so the
    label received last is the last one whichever worker process's file it is in.
    """
    tables = []
    con = duckdb.connect()
    try:
        for n, path in enumerate(sorted(Path(directory).glob(FEEDBACK_GLOB))):
            if path.stat().st_size == 0:
                continue
            tables.append(
                con.sql(
                    f"SELECT *, {n} AS file_no, row_number() OVER () AS file_row FROM "
                    f"read_json('{str(path).replace(chr(39), chr(39) * 2)}', "
                    f"format='newline_delimited', columns={_FEEDBACK_COLUMNS}, ignore_errors=true) "
                    "WHERE label IS NOT NULL"
                ).to_arrow_table()
            )
        if tables:
            merged = pa.concat_tables([t.cast(tables[0].schema) for t in tables])
            con.register("merged", merged)
            ordered = con.sql(
                "SELECT request_id, entity, time, label, received_at FROM merged ORDER BY "
                "TRY_CAST(received_at AS TIMESTAMPTZ) NULLS FIRST, file_no, file_row"
            ).to_arrow_table()
    finally:
        con.close()
    if not tables:
        empty = {
            n: pa.array([], pa.string())
            for n in ("request_id", "entity", "time", "label", "received_at")
        }
        return pa.table({**empty, "seq": pa.array([], pa.int64())})
    return ordered.append_column("seq", pa.array(range(ordered.num_rows), pa.int64()))


def read_feedback_rows(directory: Path) -> list[dict[str, Any]]:
    """Every stored feedback item in write order, each with a ``seq`` number."""
    rows: list[dict[str, Any]] = read_feedback_table(directory).to_pylist()
    for row in rows:
        row["entity"] = orjson.loads(row["entity"]) if row["entity"] else None
        row["label"] = orjson.loads(row["label"])
    return rows


def _feedback_tables(table: pa.Table) -> tuple[pa.Table, list[pa.Table]]:
    """Id feedback as one table, entity feedback as one table per set of entity fields."""
    labels = [orjson.loads(v) for v in table["label"].to_pylist()]
    numeric = all(isinstance(v, int | float) for v in labels)
    label_type = pa.float64() if numeric else pa.string()

    def label_of(value: Any) -> Any:
        if isinstance(value, bool):  # "1", not "True", beside string labels
            value = int(value)
        return float(value) if numeric else str(value)

    has_id = pc.is_valid(table["request_id"]).to_numpy(zero_copy_only=False)
    id_labels = [label_of(v) for v, keep in zip(labels, has_id, strict=True) if keep]
    by_id = table.filter(pa.array(has_id))
    id_table = pa.table(
        {
            "request_id": by_id["request_id"].cast(pa.string()),
            "label": pa.array(id_labels, label_type),
            "received_at": by_id["received_at"].cast(pa.string()),
            "seq": by_id["seq"],
        }
    )
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    entity_rows = table.filter(pa.array(~has_id)).to_pylist() if not has_id.all() else []
    for r in entity_rows:
        entity = orjson.loads(r["entity"]) if r["entity"] else None
        if entity:
            groups.setdefault(tuple(sorted(entity)), []).append(
                {**r, "entity": entity, "label": orjson.loads(r["label"])}
            )
    entity_tables = []
    for keys, members in groups.items():
        columns: dict[str, Any] = {
            f"k{i}": pa.array([orjson.dumps(m["entity"][k]).decode() for m in members])
            for i, k in enumerate(keys)
        }
        columns["time"] = pa.array(
            [as_utc(datetime.fromisoformat(m["time"])) for m in members], pa.timestamp("us", "UTC")
        )
        columns["label"] = pa.array([label_of(m["label"]) for m in members], label_type)
        columns["seq"] = pa.array([m["seq"] for m in members], pa.int64())
        table = pa.table(columns)
        entity_tables.append(table.replace_schema_metadata({"keys": orjson.dumps(keys)}))
    return id_table, entity_tables


def join_feedback(
    pred_dir: Path,
    fb_dir: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Logged predictions that have ground truth, with the truth in column ``label``.

    Parameters
    ----------
    pred_dir, fb_dir : Path
        The prediction log and the feedback directory.
    since, until : datetime, optional
        Keep predictions logged at or after ``since`` and before ``until``.

    Returns
    -------
    pandas.DataFrame
        ``request_id, ts, model_version, score, predicted_label`` (the class code),
        ``proba`` (a multiclass model's probabilities), ``latency_ms``, the ``in_<name>``
        inputs, ``label`` and ``feedback_by`` (``"request_id"`` or ``"entity"``), ordered by
        ``ts``. ``attrs["unknown_ids"]`` lists feedback request ids found in no prediction (only
        when the join covers the whole log, with neither ``since`` nor ``until``) and
        ``attrs["unmatched_entities"]`` counts entity items no prediction precedes.
    """
    # Read past ``until``: an entity label belongs to the newest prediction before it, which
    # may lie after the window; the final WHERE keeps the window's rows.
    predictions = read_predictions(pred_dir, since=since, raw_inputs=True)
    id_table, entity_tables = _feedback_tables(read_feedback_table(fb_dir))
    con = duckdb.connect()
    try:
        con.register(
            "preds", pa.Table.from_pandas(predictions, schema=LOG_SCHEMA, preserve_index=False)
        )
        con.register("fb_id", id_table)
        con.execute(
            "CREATE TEMP TABLE labels AS SELECT request_id, label, 0 AS rank, seq "
            "FROM fb_id QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY seq DESC) = 1"
        )
        # Within a window, a label for a prediction outside it is not unknown: only a join
        # over the whole log can tell.
        whole_log = since is None and until is None
        unknown = (
            [
                r[0]
                for r in con.sql(
                    "SELECT request_id FROM labels WHERE request_id NOT IN "
                    "(SELECT request_id FROM preds) ORDER BY request_id"
                ).fetchall()
            ]
            if whole_log
            else []
        )
        unmatched = 0
        for n, table in enumerate(entity_tables):
            keys = orjson.loads(table.schema.metadata[b"keys"])
            con.register(f"fb_e{n}", table)
            extracted = ", ".join(
                f"CAST(json_extract(inputs, ?) AS VARCHAR) AS k{i}" for i in range(len(keys))
            )
            paths = ['$."' + k.replace('"', '\\"') + '"' for k in keys]
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE pe AS SELECT request_id, ts, {extracted} FROM preds",
                paths,
            )
            on = " AND ".join(f"f.k{i} = p.k{i}" for i in range(len(keys)))
            inserted = con.execute(
                f"INSERT INTO labels SELECT p.request_id, f.label, 1, f.seq FROM fb_e{n} f "
                f"ASOF JOIN pe p ON {on} AND f.time >= p.ts"
            ).fetchone()
            unmatched += table.num_rows - (inserted[0] if inserted else 0)
        where, params = [], []
        if since is not None:
            where.append("p.ts >= CAST(? AS TIMESTAMPTZ)")
            params.append(as_utc(since).isoformat())
        if until is not None:
            where.append("p.ts < CAST(? AS TIMESTAMPTZ)")
            params.append(as_utc(until).isoformat())
        frame = (
            con.sql(
                "SELECT p.request_id, p.ts, p.model_version, p.score, p.label AS predicted_label, "
                "p.proba, p.latency_ms, p.inputs, l.label, "
                "CASE l.rank WHEN 0 THEN 'request_id' ELSE 'entity' END AS feedback_by "
                "FROM preds p JOIN (SELECT * FROM labels QUALIFY row_number() OVER "
                "(PARTITION BY request_id ORDER BY rank, seq DESC) = 1) l USING (request_id)"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY p.ts, p.request_id",
                params=params,
            )
            .to_arrow_table()
            .to_pandas()
        )
    finally:
        con.close()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame = expand_inputs(frame)
    label = frame.pop("label")
    frame["label"] = label
    frame["feedback_by"] = frame.pop("feedback_by")
    frame.attrs["unknown_ids"] = unknown
    frame.attrs["unmatched_entities"] = int(unmatched)
    return frame


LabelsOf = Callable[[int], LabelCodec]
"""The codec of a model version (its signature's classes)."""


def live_metrics(
    pred_dir: Path,
    fb_dir: Path,
    *,
    task: str,
    since: datetime | None = None,
    labels_of: LabelsOf | None = None,
) -> dict[str, Any]:
    """Realised metrics of each model version over its labelled predictions.

    Parameters
    ----------
    labels_of : callable, optional
        The codec of a model version, to encode its labels (by default the task's: binary
        0/1, or regression; a multiclass task needs it).

    Returns
    -------
    dict
        ``{"versions": {"<version>": {"n": ..., <metric>: ...}}, "labelled": n,
        "unknown_ids": [...], "unmatched_entities": n, "invalid_labels": n}``; metrics as in
        :func:`evaluate_labelled`, over the labels valid for the version (see
        :func:`task_truth`; a version's ``invalid_labels`` counts those left out).
    """
    joined = join_feedback(pred_dir, fb_dir, since=since)
    versions: dict[str, dict[str, float]] = {}
    invalid = 0
    for version, group in joined.groupby("model_version", sort=True):
        try:
            codec = labels_of(int(version)) if labels_of is not None else task
            found, dropped = labelled_metrics(codec, group)
        except InvalidInputError as exc:
            found, dropped = {"n": 0.0, "error": str(exc)}, 0  # type: ignore[dict-item]
        invalid += dropped
        if dropped:
            found["invalid_labels"] = float(dropped)
        versions[str(int(version))] = found
    return {
        "versions": versions,
        "labelled": len(joined),
        "unknown_ids": list(joined.attrs["unknown_ids"])
        if since is None
        else unknown_ids(pred_dir, fb_dir),
        "unmatched_entities": int(joined.attrs.get("unmatched_entities", 0)),
        "invalid_labels": invalid,
    }


def labelled_metrics(
    task: str | LabelCodec, joined: pd.DataFrame, *, score: str = "score", proba: str = "proba"
) -> tuple[dict[str, float], int]:
    """Metrics of joined predictions (one model version's) against their labels, and how many
    labels were left out (see :func:`labelled_arrays`)."""
    codec = _codec(task)
    truth, predicted, valid = labelled_arrays(codec, joined, score=score, proba=proba)
    dropped = int((~valid).sum())
    if not valid.any():
        return {"n": 0.0}, dropped
    return evaluate_labelled(codec, truth[valid], predicted[valid]), dropped


def labelled_arrays(
    task: str | LabelCodec, joined: pd.DataFrame, *, score: str = "score", proba: str = "proba"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label codes of joined predictions, their predictions as a metric takes them, and
    which rows a metric may use: a label that is a class of ``task`` (see :func:`task_truth`)
    and a logged prediction (``score``, or a multiclass model's ``proba`` vector)."""
    truth, valid = task_truth(task, joined["label"])
    predicted, scored = predictions_of(task, joined, score=score, proba=proba)
    return truth, predicted, valid & scored


def predictions_of(
    task: str | LabelCodec, frame: pd.DataFrame, *, score: str = "score", proba: str = "proba"
) -> tuple[np.ndarray, np.ndarray]:
    """Logged predictions as a metric takes them, and which rows have one: the score vector,
    or for multiclass the ``(n, k)`` probabilities (rows without ``k`` of them are left out)."""
    codec = _codec(task)
    if codec.task is not Task.MULTICLASS:
        values = frame[score].to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.isfinite(values)
    k = codec.n_classes
    out = np.full((len(frame), k), np.nan)
    column = frame[proba] if proba in frame.columns else pd.Series([None] * len(frame))
    for i, vector in enumerate(column.tolist()):
        if vector is not None and len(vector) == k:
            out[i] = vector
    return out, np.isfinite(out).all(axis=1)


def evaluate_labelled(task: str | LabelCodec, truth: Any, predicted: Any) -> dict[str, float]:
    """Metrics of ``predicted`` (scores, or a multiclass model's ``(n, k)`` probabilities)
    against label codes ``truth``, as :func:`conveyor.evaluation.metrics.evaluate` computes them.

    Raises
    ------
    InvalidInputError
        If a multiclass prediction is not one row of the codec's classes per label.
    """
    codec = _codec(task)
    if codec.task is Task.MULTICLASS:
        p = np.asarray(predicted, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != codec.n_classes:
            raise InvalidInputError(
                f"Multiclass metrics need one row of {codec.n_classes} probabilities per label. "
                f"Got probabilities of shape {p.shape}."
            )
    return evaluate(codec.task.value, truth, predicted)


def _codec(task: str | LabelCodec) -> LabelCodec:
    if isinstance(task, LabelCodec):
        return task
    codec = default_labels(task)
    if codec is None:
        raise InvalidInputError(
            f"Labels of a {task} task are read with the model's classes; pass its codec "
            "(the model signature's labels)."
        )
    return codec


def unknown_ids(pred_dir: Path, fb_dir: Path) -> list[str]:
    """Labelled request ids found nowhere in the prediction log, sorted.

    A windowed :func:`join_feedback` cannot tell (the prediction may lie outside the window);
    this looks every labelled id up in the whole log, reading its ``request_id`` column only,
    so a windowed answer lists the same unknown ids as a whole-log one.
    """
    ids = [i for i in read_feedback_table(fb_dir)["request_id"].to_pylist() if i]
    return sorted(set(ids) - find_logged_ids(pred_dir, ids))


def task_truth(task: str | LabelCodec, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Joined labels as float64 codes of ``task``'s codec, and which of them a metric may use.

    ``task`` is a model's codec (``signature.labels``) or a task name (binary then means labels
    0/1). A classification label is encoded by its canonical text (``"1"``, ``1``, ``1.0`` and
    ``True`` are one class); a stored label that is no class of the codec or, for a regression,
    no finite number (written before labels were checked, or by hand, or for a version with
    other classes) is left out, so no stored label breaks a metric.
    """
    codec = _codec(task)
    if codec.task is Task.REGRESSION:
        truth = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return truth, np.isfinite(truth)
    index = _class_index(codec)
    codes = [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else index.get(label_key(v))
        for v in labels.tolist()
    ]
    truth = np.asarray([np.nan if c is None else float(c) for c in codes], dtype=np.float64)
    return truth, np.isfinite(truth)


def _answer(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def feedback_routes(
    log: FeedbackLog,
    *,
    task: str,
    labels_of: LabelsOf | None = None,
    token: str | None = None,
    max_body_bytes: int = 16 * 1024 * 1024,
    max_string_chars: int = 4096,
    prefix: str = "/v1",
) -> list[Route]:
    """``POST {prefix}/feedback`` and ``GET {prefix}/metrics/live`` for the serving app.

    Parameters
    ----------
    log : FeedbackLog
        Where labels go; its ``predictions_dir`` is the log unknown ids are checked against.
    task : str
        The project's task, for the live metrics.
    labels_of : callable, optional
        The codec of a model version, for the live metrics (see :func:`live_metrics`).
    token : str, optional
        When set, recording feedback needs ``Authorization: Bearer <token>`` (401 otherwise).
    max_body_bytes : int
        Larger bodies are refused with 413.
    max_string_chars : int
        Longer strings in the body are refused with 422 (when no :class:`RequestGuard` did).
    """

    async def record(request: Request) -> Response:
        if not is_authorised(request.headers, token):
            what = "no bearer token" if "authorization" not in request.headers else "a wrong one"
            return _answer({"error": f"recording feedback needs a bearer token; got {what}"}, 401)
        try:
            payload = await request_json(
                request, max_body_bytes=max_body_bytes, max_string_chars=max_string_chars
            )
        except BodyError as exc:
            return _answer({"error": exc.message, "errors": exc.errors}, exc.status)
        if isinstance(payload, Mapping) and set(payload) == {"items"}:
            payload = payload["items"]
        items = payload if isinstance(payload, list) else [payload]
        try:
            result = await anyio.to_thread.run_sync(log.record, items)
        except InvalidInputError as exc:
            return _answer({"error": str(exc)}, 422)
        except ConveyorError as exc:
            return _answer({"error": str(exc)}, 503)
        return _answer(result.to_dict())

    async def live(request: Request) -> Response:
        if log.predictions_dir is None:
            return _answer({"error": "this server has no prediction log to join labels to"}, 404)
        since_text = request.query_params.get("since")
        try:
            since = as_utc(datetime.fromisoformat(since_text)) if since_text else None
        except ValueError:
            return _answer({"error": f"'since' must be an ISO-8601 time, got {since_text!r}"}, 400)
        pred_dir = log.predictions_dir
        body = await anyio.to_thread.run_sync(
            lambda: live_metrics(
                pred_dir, log.directory, task=task, since=since, labels_of=labels_of
            )
        )
        return Response(
            orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    return [
        Route(f"{prefix}/feedback", record, methods=["POST"]),
        Route(f"{prefix}/metrics/live", live, methods=["GET"]),
    ]
