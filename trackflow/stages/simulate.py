"""`trackflow simulate-batch`: an incoming batch made of held-out real rows, optionally shifted."""

from __future__ import annotations

from typing import Any

import pandas as pd

from components.io import write_parquet
from components.params import Params
from components.simulate import Shift, simulate_batch
from trackflow.paths import ProjectPaths
from trackflow.stages.scoring import incoming_dir


def simulate(
    paths: ProjectPaths,
    params: Params,
    drift: Shift = "none",
    rows: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Write an incoming batch built from held-out real rows (the main protocol's test tracks)."""
    validated = pd.read_parquet(paths.validated_tracks)
    splits = pd.read_parquet(paths.splits)
    held_out = set(splits.loc[splits[f"split_{params.split.protocol}"] == "test", "track_id"])
    pool = validated[validated["track_id"].isin(held_out)]
    settings = params.simulate if rows is None else params.simulate.model_copy(update={"rows": rows})
    batch = simulate_batch(pool, drift, settings)
    name = name or f"simulated-{drift}-{settings.seed}"
    destination = incoming_dir(paths, params) / f"{name}.parquet"
    write_parquet(batch, destination)
    return {"batch": name, "path": str(destination), "rows": len(batch), "drift": drift, "pool": len(pool)}
