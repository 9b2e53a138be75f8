"""Autologging overhead: what ``cv.autolog()`` adds to a small scikit-learn fit, against MLflow.

Both halves run the same script in their own interpreter (MLflow 3 in the virtual environment
of :mod:`benchmarks.tracking`): a LogisticRegression fit of about 0.1 s on a fixed synthetic
frame (15,000 x 20), timed plain and then with autologging on (params, training score, the
model, signature and input example logged to a local SQLite store and artifact folder). The
overhead is the fastest autologged fit minus the fastest plain fit (the least noisy estimate
of an added constant); the first autologged fit (imports, store warm-up) is reported apart.
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

which, work, repeats = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
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
    enable = lambda: mlflow.sklearn.autolog()
else:
    import conveyor as cv
    from conveyor.config import Settings
    from conveyor.workspace import Workspace
    cv.set_workspace(Workspace.open(Settings(home=work / "conveyor")))
    enable = lambda: cv.autolog(frameworks=["sklearn"])
fit()
plain = [fit() for _ in range(repeats)]
start = time.perf_counter(); enable(); enable_s = time.perf_counter() - start
first = fit()
logged = [fit() for _ in range(repeats)]
print("AUTOLOG_RESULT " + json.dumps({
    "plain_s": min(plain), "logged_s": min(logged), "overhead_s": min(logged) - min(plain),
    "first_fit_s": first, "enable_s": enable_s,
}))
"""


def _half(python: str, which: str, work: Path, repeats: int) -> dict[str, float]:
    script = work / "autolog_bench.py"
    script.write_text(SCRIPT)
    args = [python, str(script), which, str(work), str(repeats)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=work)
    for line in done.stdout.splitlines():
        if line.startswith("AUTOLOG_RESULT "):
            result: dict[str, float] = json.loads(line.removeprefix("AUTOLOG_RESULT "))
            return result
    raise BenchmarkError(f"the {which} half printed no result: {done.stderr[-3000:]}")


def run(quick: bool = False) -> list[Result]:
    """Autolog overhead per fit and first-fit cost, Conveyor against MLflow."""
    repeats = 3 if quick else 9
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, peer_dir = Path(tmp, "conveyor"), Path(tmp, "mlflow")
        ours_dir.mkdir()
        peer_dir.mkdir()
        ours = _half(sys.executable, "conveyor", ours_dir, repeats)
        peer = _half(str(ensure_mlflow()), "mlflow", peer_dir, repeats)
    print(f"plain fit: conveyor {ours['plain_s']:.3f} s, mlflow {peer['plain_s']:.3f} s",
          file=sys.stderr)  # fmt: skip
    return [
        Result("autolog", "overhead per LogisticRegression fit", "s",
               max(ours["overhead_s"], 1e-4), "mlflow", max(peer["overhead_s"], 1e-4), "lower"),
        Result("autolog", "first autologged fit", "s", ours["first_fit_s"], "mlflow",
               peer["first_fit_s"], "lower"),
        Result("autolog", "enabling autolog", "s", ours["enable_s"], "mlflow",
               peer["enable_s"], "lower"),
    ]  # fmt: skip
