"""Small real model versions for registry tests over HTTP: loadable, with sample requests."""

from __future__ import annotations

import orjson

from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature
from conveyor.registry.service import register_version
from conveyor.training.models import PriorModel, save_model
from conveyor.workspace import Workspace

SIGNATURE = Signature(inputs=(ColumnSchema("x", ColumnKind.NUMERIC),))
SAMPLES = [{"x": 1.0}, {"x": 2.5}, {"x": -3.0}]


def real_versions(ws: Workspace, model: str, count: int = 1) -> list[int]:
    """Register ``count`` versions of ``model``, each a prior model the server can load and
    replay; their artifacts are uploaded to the workspace's (the server's) artifact store."""
    samples = ws.stores.artifacts.put_bytes(orjson.dumps(SAMPLES))
    versions = []
    for i in range(count):
        predictor = PriorModel(signature=SIGNATURE, positive_rate=0.1 + 0.01 * i)
        artifact = ws.stores.artifacts.put_bytes(save_model(predictor))
        mv = register_version(
            ws,
            model,
            artifact=artifact,
            run_id=None,
            signature=SIGNATURE.to_dict(),
            lineage={"sample_requests": samples},
            metrics={"i": i},
        )
        versions.append(mv.version)
    return versions
