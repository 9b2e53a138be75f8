"""Drift statistics against Evidently's ``DataDriftPreset``, and profile + validate throughput.

Both sides start from the same two Parquet files (reference and current, 1,000,000 rows x 25
columns: 20 numeric, 5 categorical; six numeric and one categorical shifted), written once by
a child process. Each side then runs in its own child process, timed from the first read to
the finished result, and reports its process peak resident memory (``ru_maxrss``: imports,
reading and computing included):

* ``drift_time_ks_chi2`` and ``drift_peak_rss_ks_chi2``: Conveyor's
  :func:`conveyor.data.drift.compute_drift_parquet` reads one column of each file at a time
  and computes PSI, KS, chi-square, Jensen-Shannon, Wasserstein and L-infinity for every
  column with p-value adjustment (median time of 3 runs; peak over all of them); Evidently
  reads both files with ``pandas.read_parquet`` and runs
  ``DataDriftPreset(num_method="ks", cat_method="chisquare")`` once — the two hypothesis
  tests Conveyor also computes.
* ``drift_time_default`` and ``drift_peak_rss_default``: the same Conveyor run against
  Evidently's default ``DataDriftPreset()`` (Wasserstein for numeric, Jensen-Shannon for
  categorical columns at this size); skipped with ``--quick``.
* ``drift_rss_after_imports``: each side's resident memory after its imports, before reading
  (the floor under both peaks).
* ``profile_validate_rows_per_s``: :func:`conveyor.data.profile_frame` plus
  :func:`conveyor.data.validation.validate_batch` over 1,000,000 rows x 50 columns
  (40 numeric, 10 categorical) built in memory, against
  ``pandas.DataFrame.describe(include="all")`` on the same frame as the baseline (it computes
  less: no histograms, sketches or checks).

Evidently runs in its own virtual environment (``CONVEYOR_BENCH_VENVS``, default
``/tmp/peer-venvs``, created with ``pip install evidently==0.7.23 'pandas<3'`` when missing). With
``--quick`` the files and frames have 100,000 rows.

Run: ``python -m benchmarks drift [--quick] [--json]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import BenchmarkError, Result, peer_python

PEER = "Evidently {version} DataDriftPreset"
#: The peer's version, pinned so figures from different days compare the same Evidently.
EVIDENTLY_VERSION = "0.7.23"

FRAMES = r'''
import gc, json, os, resource, statistics, sys, time
import numpy as np
import pandas as pd

def make_frames(n, n_num=20, n_cat=5, seed=0):
    """Reference and current frames; current has num0-num5 shifted in mean (0.1 sd steps),
    num7 wider, and cat0's frequencies reversed."""
    rng = np.random.default_rng(seed)
    cats = np.array([f"value_{i}" for i in range(12)], dtype=object)
    def frame(shift):
        data = {}
        for i in range(n_num):
            mu = shift * 0.1 * i if i < 6 else 0.0
            sd = 1.0 + (0.2 * shift if i == 7 else 0.0)
            data[f"num{i}"] = rng.normal(mu, sd, n)
        for j in range(n_cat):
            p = np.linspace(1.0, 2.0, cats.size)
            if shift and j == 0:
                p = p[::-1]
            data[f"cat{j}"] = pd.Series(cats[rng.choice(cats.size, n, p=p / p.sum())], dtype=object)
        return pd.DataFrame(data)
    return frame(0.0), frame(1.0)

def rss_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def reset_peak():
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass

def measure(fn, repeats):
    times, peaks = [], []
    base = None
    for _ in range(repeats):
        reset_peak()
        base = rss_kib("VmRSS") if base is None else base
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        peaks.append(rss_kib("VmHWM"))
    peak = max(peaks)
    return out, {"time_s": statistics.median(times), "peak_rss_mb": peak / 1024,
                 "extra_peak_mb": (peak - base) / 1024}
'''

WRITE_SCRIPT = (
    FRAMES
    + r"""
n, folder = int(sys.argv[1]), sys.argv[2]
ref, cur = make_frames(n)
ref.to_parquet(os.path.join(folder, "reference.parquet"), index=False)
cur.to_parquet(os.path.join(folder, "current.parquet"), index=False)
print("BENCH_RESULT " + json.dumps({"rows": n, "columns": ref.shape[1]}), flush=True)
"""
)

PEAK = r"""
def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
"""

EVIDENTLY_SCRIPT = (
    FRAMES
    + PEAK
    + r"""
import warnings
warnings.filterwarnings("ignore")
import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref_path, cur_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
preset = (DataDriftPreset(num_method="ks", cat_method="chisquare") if mode == "ks_chi2"
          else DataDriftPreset())
gc.collect()
imports_mb = rss_kib("VmRSS") / 1024
t = time.perf_counter()
ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
definition = DataDefinition(
    numerical_columns=[c for c in ref.columns if c.startswith("num")],
    categorical_columns=[c for c in ref.columns if c.startswith("cat")],
)
reference = Dataset.from_pandas(ref, data_definition=definition)
current = Dataset.from_pandas(cur, data_definition=definition)
snapshot = Report([preset]).run(current_data=current, reference_data=reference).dict()
stats = {"time_s": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
         "imports_rss_mb": imports_mb, "version": evidently.__version__}
print("BENCH_RESULT " + json.dumps(stats), flush=True)
"""
)

CONVEYOR_DRIFT_SCRIPT = (
    FRAMES
    + PEAK
    + r"""
from conveyor.data.drift import compute_drift_parquet

ref_path, cur_path = sys.argv[1], sys.argv[2]
gc.collect()
imports_mb = rss_kib("VmRSS") / 1024
times = []
for _ in range(3):
    t = time.perf_counter()
    drift = compute_drift_parquet(ref_path, cur_path)
    times.append(time.perf_counter() - t)
stats = {"time_s": statistics.median(times), "peak_rss_mb": peak_rss_mb(),
         "imports_rss_mb": imports_mb, "drifted": drift["summary"]["drifted_features"],
         "flagged_ks": drift["summary"]["flagged"]["ks"]}
print("BENCH_RESULT " + json.dumps(stats), flush=True)
"""
)

CONVEYOR_PROFILE_SCRIPT = (
    FRAMES
    + r"""
from conveyor.data.profiles import profile_frame
from conveyor.data.schemas import infer_schema
from conveyor.data.validation import validate_batch

n = int(sys.argv[1])
ref, cur = make_frames(n, n_num=40, n_cat=10)
del cur
frame = ref.assign(y=np.random.default_rng(1).integers(0, 2, n))
schema = infer_schema(frame.iloc[:10_000], label="y")
first = profile_frame(frame.iloc[:10_000], schema)

def profile_and_validate():
    report = validate_batch(frame, schema, reference_profile=first)
    return profile_frame(frame, schema, reference=first), report

profile_and_validate()
(_, report), stats = measure(profile_and_validate, 3)
_, base = measure(lambda: frame.describe(include="all"), 3)
stats["rows_per_s"] = n / stats["time_s"]
stats["describe_rows_per_s"] = n / base["time_s"]
stats["anomalies"] = len(report.anomalies)
print("BENCH_RESULT " + json.dumps(stats), flush=True)
"""
)


def ensure_evidently() -> Path:
    """Return the Python of a virtual environment with Evidently, creating it when missing."""
    return peer_python(
        "evidently",
        f"import evidently, sys; sys.exit(evidently.__version__ != '{EVIDENTLY_VERSION}')",
        [f"evidently=={EVIDENTLY_VERSION}", "pandas<3"],
    )


def _child(python: Path | str, script: str, work: Path, *args: str) -> dict[str, object]:
    path = work / f"bench_{abs(hash(script))}.py"
    path.write_text(script)
    env = dict(os.environ)
    if str(python) == sys.executable:
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    else:
        env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), str(path), *args], capture_output=True, text=True, check=False, env=env
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, object] = json.loads(line.removeprefix("BENCH_RESULT "))
            return result
    raise BenchmarkError(f"{path.name} printed no result: {done.stderr[-3000:]}")


def _num(value: object) -> float:
    if not isinstance(value, int | float):
        raise BenchmarkError(f"expected a number, got {value!r}")
    return float(value)


def run(quick: bool = False) -> list[Result]:
    n = 100_000 if quick else 1_000_000
    python = ensure_evidently()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-drift-") as tmp:
        work = Path(tmp)
        print(f"drift: writing 2 x {n:,} rows x 25 columns to Parquet ...", file=sys.stderr)
        _child(sys.executable, WRITE_SCRIPT, work, str(n), str(work))
        files = (str(work / "reference.parquet"), str(work / "current.parquet"))
        print("drift: Conveyor compute_drift_parquet ...", file=sys.stderr)
        ours = _child(sys.executable, CONVEYOR_DRIFT_SCRIPT, work, *files)
        print("drift: Evidently (ks, chisquare) ...", file=sys.stderr)
        peer = _child(python, EVIDENTLY_SCRIPT, work, *files, "ks_chi2")
        name = PEER.format(version=peer.get("version", "?"))
        modes = [("ks_chi2", "(ks, chisquare)", peer)]
        if not quick:
            print("drift: Evidently (default) ...", file=sys.stderr)
            modes.append(
                ("default", "(default)", _child(python, EVIDENTLY_SCRIPT, work, *files, "default"))
            )
        for mode, label, theirs in modes:
            for metric, key, unit in (
                (f"drift_time_{mode}", "time_s", "s"),
                (f"drift_peak_rss_{mode}", "peak_rss_mb", "MB"),
            ):
                results.append(
                    Result("drift", metric, unit, _num(ours[key]), f"{name} {label}",
                           _num(theirs[key]), "lower")
                )  # fmt: skip
        results.append(
            Result("drift", "drift_rss_after_imports", "MB", _num(ours["imports_rss_mb"]),
                   f"{name} (ks, chisquare)", _num(peer["imports_rss_mb"]), "lower")
        )  # fmt: skip
        print(f"profile + validate: {n:,} rows x 50 columns ...", file=sys.stderr)
        prof = _child(sys.executable, CONVEYOR_PROFILE_SCRIPT, work, str(n))
        results.append(
            Result(
                "drift",
                "profile_validate_rows_per_s",
                "rows/s",
                _num(prof["rows_per_s"]),
                "pandas DataFrame.describe(include='all')",
                _num(prof["describe_rows_per_s"]),
                "higher",
            )  # fmt: skip
        )
    return results
