"""The post-release watch's decision at each of its boundaries, on a real workspace.

One workspace walks through every state: a first release (nothing to compare with), a release
waiting one label short of ``min_labels``, the same release judged healthy at exactly
``min_labels``, the watch switched off, and a rollback by the floor alone.
"""

from __future__ import annotations

from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.watch import watch_release
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.spec import parse_spec
from conveyor.training.service import train_model

from .conftest import SPEC, make_batch
from .pipeline.traffic import serve_and_label as _serve


def test_the_watch_waits_for_min_labels_of_the_release_and_rolls_back_under_the_floor(ws, spec):
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    first = find_alias_version(ws, "toy", PRODUCTION)
    assert first is not None
    first_release = watch_release(ws, spec)
    assert (first_release.status, first_release.version) == ("no_release", first)

    second = train_model(ws, spec).version.version
    # Traffic the new version answered before its release (as a canary would) is not its
    # release's evidence.
    _serve(ws, spec, make_batch(6, rows=30), second)
    promote(ws, "toy", second, reason="same data, same quality")
    waiting = watch_release(ws, spec)
    assert (waiting.status, waiting.version, waiting.previous) == ("waiting", second, first)
    assert waiting.evidence == {
        "labels": 0,
        "need": {"labels": 200, "adaptive": False, "per_release": []},
    }

    # Labels of the previous version's traffic do not count for the release.
    _serve(ws, spec, make_batch(7, rows=50), first)
    _serve(ws, spec, make_batch(8, rows=199), second)
    short = watch_release(ws, spec)
    assert short.status == "waiting" and short.evidence == {
        "labels": 199,
        "need": {"labels": 200, "adaptive": False, "per_release": []},
    }

    _serve(ws, spec, make_batch(9, rows=1), second)
    healthy = watch_release(ws, spec)
    assert healthy.status == "healthy" and not healthy.rolled_back
    assert healthy.evidence is not None and healthy.evidence["labels"] == 200
    decision = healthy.evidence["decision"]
    assert decision["n"] == 200 and decision["metric"] == "roc_auc"
    # Same data, same model: the release scores exactly what the version it replaced scores.
    assert decision["delta"] == 0.0

    off = parse_spec({**SPEC, "watch": {"min_labels": 200, "enabled": False}})
    assert watch_release(ws, off).status == "no_release"

    floored = parse_spec({**SPEC, "watch": {"min_labels": 200, "floor": 0.99}})
    outcome = watch_release(ws, floored)
    assert outcome.rolled_back and (outcome.version, outcome.previous) == (second, first)
    assert find_alias_version(ws, "toy", PRODUCTION) == first
    alerts = ws.stores.monitor.list_alerts("toy", kind="rollback")
    assert len(alerts) == 1
    auc = decision["challenger"]
    assert alerts[0].message == (
        f"Rolled back v{second} to v{first}: post-release watch: v{second} roc_auc {auc:.3f} "
        f"vs v{first} {decision['production']:.3f} on the same 200 labelled requests."
    )
    assert alerts[0].evidence["labels"] == 200
