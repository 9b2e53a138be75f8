"""Autologging overhead: what ``cv.autolog()`` adds to a small scikit-learn fit, against MLflow.

Both halves run the same script in their own interpreter (MLflow 3 in the virtual environment
of :mod:`benchmarks.tracking`): a LogisticRegression fit of about 0.1 s on a fixed synthetic
frame (15,000 x 20), timed plain and then with autologging on (params, training score, the
model, signature and input example logged to a local SQLite store and artifact folder). The
overhead is the fastest autologged fit minus the fastest plain fit (the least noisy estimate
of an added constant); the first autologged fit (imports, store warm-up) is reported apart.

Two settings, because the two tools do different work when they log the model:

* ``params and metrics``: the like-for-like headline. MLflow with ``log_models=False``,
  ``log_datasets=False`` and ``log_post_training_metrics=False``; Conveyor with
  ``log_models=False`` and ``log_input_example=False``. Both record the run, its parameters and
  its training score, and nothing else.
* ``with the model``: each tool's default. Beyond the model, signature and input example that
  both store, MLflow also infers a pip environment for the model and draws training plots
  (confusion matrix, ROC and precision-recall curves); Conveyor does neither. The difference
  between the two settings of one tool is what its model logging costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import BenchmarkError, Result
from benchmarks.tracking import ensure_mlflow

SCRIPT = r"""
import json, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from sklearn.linear_model import LogisticRegression

which, work, repeats, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
full = mode == "full"
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(15000, 20)), columns=[f"c{i}" for i in range(20)])
y = (X["c0"] + rng.normal(size=len(X)) > 0).astype(int)

def fit():
    start = time.perf_counter()
    LogisticRegression(max_iter=200).fit(X, y)
    return time.perf_counter() - start

if which == "mlflow":
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
    mlflow.set_experiment("autolog")
    version = mlflow.__version__
    enable = lambda: mlflow.sklearn.autolog(
        log_models=full, log_datasets=full, log_post_training_metrics=full
    )
else:
    import conveyor as cv
    from conveyor.config import Settings
    from conveyor.workspace import Workspace
    cv.set_workspace(Workspace.open(Settings(home=work / "conveyor")))
    version = cv.__version__ if hasattr(cv, "__version__") else "dev"
    enable = lambda: cv.autolog(frameworks=["sklearn"], log_models=full, log_input_example=full)
fit()
plain = [fit() for _ in range(repeats)]
start = time.perf_counter(); enable(); enable_s = time.perf_counter() - start
first = fit()
logged = [fit() for _ in range(repeats)]
print("AUTOLOG_RESULT " + json.dumps({
    "plain_s": min(plain), "logged_s": min(logged), "overhead_s": min(logged) - min(plain),
    "first_fit_s": first, "enable_s": enable_s, "version": version,
}))
"""


def _half(python: str, which: str, work: Path, repeats: int, mode: str) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    script = work / "autolog_bench.py"
    script.write_text(SCRIPT)
    args = [python, str(script), which, str(work), str(repeats), mode]
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=work)
    for line in done.stdout.splitlines():
        if line.startswith("AUTOLOG_RESULT "):
            result: dict[str, float] = json.loads(line.removeprefix("AUTOLOG_RESULT "))
            return result
    raise BenchmarkError(f"the {which} half printed no result: {done.stderr[-3000:]}")


def run(quick: bool = False) -> list[Result]:
    """Autolog overhead per fit and first-fit cost, Conveyor against MLflow, in both settings."""
    repeats = 3 if quick else 9
    peer_python = str(ensure_mlflow())
    results = []
    for mode, label in (("bare", "params and metrics"), ("full", "with the model")):
        with tempfile.TemporaryDirectory() as tmp:
            # Interleaved: each setting runs both halves back to back.
            ours = _half(sys.executable, "conveyor", Path(tmp, "conveyor"), repeats, mode)
            peer = _half(peer_python, "mlflow", Path(tmp, "mlflow"), repeats, mode)
        print(f"{label}: plain fit conveyor {ours['plain_s']:.3f} s, "
              f"mlflow {peer['plain_s']:.3f} s", file=sys.stderr)  # fmt: skip
        name = f"MLflow {peer['version']} sklearn autolog ({label})"
        results += [
            # An overhead under 1 ms is below what fit-to-fit noise lets us see.
            Result("autolog", f"overhead per fit, {label}", "s", max(ours["overhead_s"], 1e-3),
                   name, max(peer["overhead_s"], 1e-3), "lower"),
            Result("autolog", f"autologged fit, {label}", "s", ours["logged_s"], name,
                   peer["logged_s"], "lower"),
            Result("autolog", f"first autologged fit, {label}", "s", ours["first_fit_s"], name,
                   peer["first_fit_s"], "lower"),
        ]  # fmt: skip
        if mode == "bare":
            enabling = Result(
                "autolog",
                "enabling autolog",
                "s",
                ours["enable_s"],
                name,
                peer["enable_s"],
                "lower",
            )
            results.append(enabling)
    return results
