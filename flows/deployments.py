"""The scheduled deployments: built from configs/schedules.yaml (flows/schedules.py), served by
`trackflow serve` from one process (training weekly, batch scoring daily, drift monitoring daily after
scoring). prefect.yaml declares the same flows for work pools (including a GPU pool) for real workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.schedules import Cron

from flows.batch_scoring import batch_scoring
from flows.drift_monitoring import drift_monitoring
from flows.schedules import load_schedules
from flows.training import training
from trackflow.paths import ProjectPaths


def build_deployments(root: Path | str = ".") -> list[Any]:
    """The three runner deployments with their cron schedules; every run works on the project at `root`."""
    root = str(Path(root).resolve())
    specs = load_schedules(ProjectPaths.at(root).schedules_config)
    flows = {"training": training, "batch_scoring": batch_scoring, "drift_monitoring": drift_monitoring}
    return [
        flows[name].to_deployment(
            name=spec.name,
            schedule=Cron(spec.cron, timezone=spec.timezone),
            parameters={"root": root},
            description=spec.description,
            tags=["trackflow"],
        )
        for name, spec in specs.items()
    ]


def serve(root: Path | str = ".") -> None:
    """Serve the three deployments from this process until interrupted (runs execute here)."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(root))
