"""The scheduled deployments: built from configs/schedules.yaml, served by `trackflow serve` from one process
(training weekly, batch scoring daily, drift monitoring daily after scoring). prefect.yaml declares the same
flows for work pools (including a GPU pool) for real workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect.schedules import Cron

from trackflow.paths import ProjectPaths


@dataclass(frozen=True)
class ScheduleSpec:
    flow: str
    name: str
    cron: str
    timezone: str
    description: str

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"


def load_schedules(path: Path) -> dict[str, ScheduleSpec]:
    """configs/schedules.yaml -> one spec per flow; a missing flow or a bad cron is named in the error."""
    from prefect.client.schemas.schedules import CronSchedule

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    timezone = raw.get("timezone", "UTC")
    specs = {}
    for flow_name in ("training", "batch_scoring", "drift_monitoring"):
        entry = (raw.get("deployments") or {}).get(flow_name)
        if not entry or "cron" not in entry:
            raise ValueError(f"{path}: deployments.{flow_name}.cron is missing")
        try:
            CronSchedule(cron=entry["cron"], timezone=entry.get("timezone", timezone))
        except ValueError as exc:
            raise ValueError(f"{path}: deployments.{flow_name}: {exc}") from exc
        specs[flow_name] = ScheduleSpec(
            flow_name,
            str(entry.get("name", flow_name)),
            str(entry["cron"]),
            str(entry.get("timezone", timezone)),
            str(entry.get("description", "")),
        )
    return specs


def build_deployments(root: Path | str = ".") -> list[Any]:
    """The three runner deployments with their cron schedules; every run works on the project at `root`."""
    from flows.batch_scoring import batch_scoring
    from flows.drift_monitoring import drift_monitoring
    from flows.training import training

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


def deployment_exists(full_name: str) -> bool:
    """Whether a Prefect server is configured and has the deployment "<flow>/<name>"."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        return False  # ephemeral mode: no server, no workers
    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(full_name)
    except Exception:  # not found, or the server is unreachable: either way there is none to run
        return False
    return True


def retrain_deployment(root: Path | str = ".") -> str:
    """The full name of the training deployment that drift-triggered retraining runs."""
    return load_schedules(ProjectPaths.at(root).schedules_config)["training"].full_name


def serve(root: Path | str = ".") -> None:
    """Serve the three deployments from this process until interrupted (runs execute here)."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(root))
