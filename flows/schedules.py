"""The schedules of the served deployments (configs/schedules.yaml), and whether a Prefect server has a
deployment: what `trackflow serve` builds and drift monitoring's retraining asks for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

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
