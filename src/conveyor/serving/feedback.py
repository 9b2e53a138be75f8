"""Ground truth for logged predictions, joined by request id or by entity and time.

A feedback item is either ``{"request_id": ..., "label": ...}`` or
``{"entity": {"flight_id": 7, ...}, "time": "2024-05-01T10:00:00Z", "label": ...}``.
Items are appended as JSON lines (one ``os.write`` per :meth:`FeedbackLog.record` call) and
never rewritten.

Join rules (:func:`join_feedback`)
----------------------------------
- By request id: the label recorded last for a request id wins, so sending feedback twice
  never counts twice, and a correction replaces the earlier label.
- By entity and time: the item labels the prediction whose logged inputs hold the same value
  for every entity field (compared as JSON text, so ``7`` matches ``7`` but not ``"7"``) and
  whose log time is the latest at or before ``time``. The entity fields must reach the log:
  serve with them as pass-through fields (``create_serving_app(passthrough=...)``).
- A prediction labelled both ways takes its request-id label; one labelled by several entity
  items takes the one recorded last.
- Labels whose request id is in no logged prediction are not dropped: they stay stored and are
  reported (``FeedbackResult.unknown_ids``; ``frame.attrs["unknown_ids"]`` of the join).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.core.clock import as_utc, utcnow
from conveyor.core.errors import InvalidInputError
from conveyor.serving.predlog import (
    LOG_SCHEMA,
    expand_inputs,
    read_predictions,
)

FEEDBACK_GLOB = "fb-*.jsonl"


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


def _check_item(position: int, item: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(item, Mapping):
        return None, f"item {position}: expected an object, got {type(item).__name__}"
    label = item.get("label")
    if label is None or isinstance(label, dict | list):
        return None, f"item {position}: 'label' must be a number, boolean or string, got {label!r}"
    if isinstance(label, float) and label != label:
        return None, f"item {position}: 'label' must not be NaN"
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

    Examples
    --------
    >>> import tempfile
    >>> fb = FeedbackLog(Path(tempfile.mkdtemp()))
    >>> fb.record([{"request_id": "a", "label": 1}, {"request_id": "a", "label": 0}])
    FeedbackResult(accepted=2, duplicates=1, unknown_ids=())
    """

    def __init__(self, directory: Path, *, predictions_dir: Path | None = None) -> None:
        self.directory = Path(directory)
        self.predictions_dir = Path(predictions_dir) if predictions_dir is not None else None
        self._lock = threading.Lock()

    def record(self, items: Sequence[Mapping[str, Any]]) -> FeedbackResult:
        """Store ``items``, all or none.

        Raises
        ------
        InvalidInputError
            If any item is malformed; the message lists every bad item and nothing is stored.
        """
        rows, problems = [], []
        for position, item in enumerate(items):
            row, problem = _check_item(position, item)
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
        seen = set(self._stored_ids())
        duplicates = 0
        for row in rows:
            if row["request_id"] is not None:
                duplicates += row["request_id"] in seen
                seen.add(row["request_id"])
        received = utcnow().isoformat()
        data = b"".join(
            orjson.dumps({**row, "received_at": received}, option=orjson.OPT_APPEND_NEWLINE)
            for row in rows
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"fb-{os.getpid()}.jsonl"
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return FeedbackResult(len(rows), duplicates, self._unknown(rows))

    def _stored_ids(self) -> list[str]:
        ids = read_feedback_table(self.directory)["request_id"]
        return [i for i in ids.to_pylist() if i]

    def _unknown(self, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        if self.predictions_dir is None:
            return ()
        ids = {r["request_id"] for r in rows if r["request_id"] is not None}
        if not ids:
            return ()
        logged = set(read_predictions(self.predictions_dir, raw_inputs=True)["request_id"])
        return tuple(sorted(ids - logged))


_FEEDBACK_COLUMNS = (
    "{'request_id': 'VARCHAR', 'entity': 'JSON', 'time': 'VARCHAR', 'label': 'JSON', "
    "'received_at': 'VARCHAR'}"
)


def read_feedback_table(directory: Path) -> pa.Table:
    """Every stored feedback item in write order: ``request_id, entity, time, label`` (JSON
    text), ``received_at`` and ``seq``; a torn trailing line is skipped."""
    tables = []
    con = duckdb.connect()
    try:
        for path in sorted(Path(directory).glob(FEEDBACK_GLOB)):
            if path.stat().st_size == 0:
                continue
            tables.append(
                con.sql(
                    f"SELECT * FROM read_json('{str(path).replace(chr(39), chr(39) * 2)}', "
                    f"format='newline_delimited', columns={_FEEDBACK_COLUMNS}, ignore_errors=true) "
                    "WHERE label IS NOT NULL"
                ).to_arrow_table()
            )
    finally:
        con.close()
    if not tables:
        empty = {
            n: pa.array([], pa.string())
            for n in ("request_id", "entity", "time", "label", "received_at")
        }
        return pa.table({**empty, "seq": pa.array([], pa.int64())})
    table = pa.concat_tables([t.cast(tables[0].schema) for t in tables])
    return table.append_column("seq", pa.array(range(table.num_rows), pa.int64()))


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
        ``request_id, ts, model_version, score, predicted_label, latency_ms``, the ``in_<name>``
        inputs, ``label`` and ``feedback_by`` (``"request_id"`` or ``"entity"``), ordered by
        ``ts``. ``attrs["unknown_ids"]`` lists feedback request ids found in no prediction (only
        when the join covers the whole log, with neither ``since`` nor ``until``) and
        ``attrs["unmatched_entities"]`` counts entity items no prediction precedes.
    """
    predictions = read_predictions(pred_dir, since=since, until=until, raw_inputs=True)
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
                "p.latency_ms, p.inputs, l.label, "
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
