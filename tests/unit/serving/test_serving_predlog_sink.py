"""The prediction log as a sink: failing disks, group commits, back-pressure, post outputs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from conveyor.serving.predlog import (
    PredictionLogError,
    PredictionLogWriter,
    compact_predictions,
    find_logged_ids,
    prediction_entry,
    read_predictions,
)

SRC = Path(__file__).resolve().parents[3] / "src"


def entry(rid: str, **extra: object) -> dict:
    return prediction_entry(
        request_id=rid,
        ts="2024-05-01T12:00:00+00:00",
        model_version=1,
        inputs={"x": 1.0, "pad": "p" * 80},
        score=0.25,
        label=0,
        latency_ms=0.5,
        **extra,  # type: ignore[arg-type]
    )


def all_lines_parse(directory: Path) -> int:
    lines = 0
    for segment in directory.glob("seg-*.jsonl"):
        data = segment.read_bytes()
        assert not data or data.endswith(b"\n"), f"{segment.name} ends in a torn line"
        for line in data.splitlines():
            orjson.loads(line)
            lines += 1
    return lines


FULL_DISK_WRITER = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from conveyor.serving.predlog import PredictionLogError, PredictionLogWriter
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # over the limit: EFBIG, not death
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))
    writer = PredictionLogWriter(Path(sys.argv[1]))
    for i in range(60):
        line = ('{"request_id":"r%d","ts":"2024-05-01T12:00:00+00:00","model_version":1,'
                '"inputs":{"pad":"%s"},"score":0.5,"label":1,"latency_ms":0.1}\\n') % (i, "p" * 100)
        try:
            writer.write_bytes(line.encode() * 2)   # two lines per request
            print("ok", i, flush=True)
        except PredictionLogError:
            print("failed", i, flush=True)
    print("stats", writer.failed_writes, writer.written_writes, flush=True)
    """
)


def test_a_refused_write_is_reported_truncated_and_never_tears_a_segment(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout.split("\n")
    ok = {int(line.split()[1]) for line in out if line.startswith("ok ")}
    failed = {int(line.split()[1]) for line in out if line.startswith("failed ")}
    assert failed and ok and len(ok | failed) == 60
    stats = next(line for line in out if line.startswith("stats")).split()
    assert int(stats[1]) == len(failed) and int(stats[2]) == len(ok)
    assert all_lines_parse(tmp_path) == 2 * len(ok)
    assert set(read_predictions(tmp_path)["request_id"]) == {f"r{i}" for i in ok}


def test_concurrent_writers_are_group_committed_and_all_logged(tmp_path):
    writer = PredictionLogWriter(tmp_path, fsync=True)

    def work(t: int) -> None:
        for i in range(40):
            writer.write([entry(f"t{t}-{i}")])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.written_writes == 320 and writer.failed_writes == 0
    assert writer.group_commits <= 320
    assert all_lines_parse(tmp_path) == 320
    assert read_predictions(tmp_path)["request_id"].is_unique


def test_a_slow_sink_is_bounded_and_refusals_are_counted(tmp_path):
    writer = PredictionLogWriter(tmp_path, max_pending_bytes=600)
    errors: list[Exception] = []
    writer._lock.acquire()  # the disk stalls: the leader blocks inside its write
    try:
        leader = threading.Thread(target=writer.write, args=([entry("lead")],))
        leader.start()
        time.sleep(0.2)
        queued = threading.Thread(target=writer.write, args=([entry("queued")],))
        queued.start()
        time.sleep(0.2)
        with pytest.raises(PredictionLogError, match="past its 600-byte limit"):
            writer.write([entry("big")] * 3)
    finally:
        writer._lock.release()
    leader.join(5)
    queued.join(5)
    assert not errors
    assert writer.rejected_writes == 1 and writer.written_writes == 2
    assert sorted(read_predictions(tmp_path)["request_id"]) == ["lead", "queued"]
    stats = writer.stats()
    assert stats["rejected_writes"] == 1 and stats["written_writes"] == 2


def test_post_processed_output_is_logged_beside_the_raw_one_and_survives_compaction(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry("a", post={"score": 0.3, "label": "low", "withheld": False}), entry("b")])
    writer.close()
    before = read_predictions(tmp_path)
    assert orjson.loads(before.loc[before.request_id == "a", "post"].item())["label"] == "low"
    assert before.loc[before.request_id == "b", "post"].isna().all()
    assert before["score"].tolist() == [0.25, 0.25]
    assert compact_predictions(tmp_path) == 2
    after = read_predictions(tmp_path)
    assert after["post"].tolist() == before["post"].tolist()


def test_find_logged_ids_reads_segments_and_parts(tmp_path):
    writer = PredictionLogWriter(tmp_path)
    writer.write([entry("old")])
    writer.close()
    compact_predictions(tmp_path)
    writer.write([entry("new")])
    assert find_logged_ids(tmp_path, ["old", "new", "nope"]) == {"old", "new"}
    assert find_logged_ids(tmp_path, []) == set()
