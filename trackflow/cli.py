"""`trackflow`: the command line. Each stage command is what dvc.yaml runs; `run` runs the Prefect flow."""

from __future__ import annotations

import getpass
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from components.acquire import DataAcquisitionError
from components.ingest import IngestError
from components.params import ParamsError
from components.tasks import TASKS
from components.validation import DataValidationError
from trackflow import model_stages, stages
from trackflow.paths import ProjectPaths

app = typer.Typer(
    help="trackflow: the Spotify tracks MLOps pipeline.", no_args_is_help=True, add_completion=False
)
ROOT = typer.Option(Path("."), "--root", help="Project root (holds params.yaml and data/).")
# Errors a user can fix: printed as one clear message, exit code 1, no traceback.
USER_ERRORS = (
    DataAcquisitionError,
    IngestError,
    DataValidationError,
    ParamsError,
    FileNotFoundError,
    model_stages.TrainingError,
)


def _run(stage: Callable[..., dict[str, Any]], root: Path, **kwargs: Any) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = ProjectPaths.at(root)
    try:
        summary = stage(paths, stages.params_for(paths), **kwargs)
    except USER_ERRORS as exc:
        typer.secho(f"error [{stage.__name__}]: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(json.dumps(summary, indent=2, default=str))


@app.command("fetch-data")
def fetch_data(
    root: Path = ROOT,
    tracks_csv: str = typer.Option(None, "--tracks-csv", envvar="TRACKS_CSV", help="Local dataset.csv(.gz)."),
) -> None:
    """Put the raw dataset in data/raw/: from TRACKS_CSV when set, else download dataset.csv."""
    _run(stages.fetch_data, root, tracks_csv=tracks_csv)


@app.command()
def ingest(root: Path = ROOT) -> None:
    """Raw CSV -> typed data/interim/tracks.parquet, index column dropped."""
    _run(stages.ingest, root)


@app.command()
def validate(root: Path = ROOT) -> None:
    """The Great Expectations gate: reject bad batches, quarantine a few bad rows."""
    _run(stages.validate, root)


@app.command()
def featurize(root: Path = ROOT) -> None:
    """Validated listings -> one row per track (data/features/tracks.parquet)."""
    _run(stages.featurize, root)


@app.command()
def split(root: Path = ROOT) -> None:
    """Seeded grouped holdouts by primary artist and by track (data/splits/)."""
    _run(stages.split, root)


def _known_task(value: str) -> str:
    if value not in TASKS:
        raise typer.BadParameter(f"{value!r} is not a task; choose one of {', '.join(TASKS)}")
    return value


TASK = typer.Option(..., "--task", "-t", help="popularity, genre or hit.", callback=_known_task)


@app.command()
def tune(
    task: str = TASK, family: str = typer.Option(None, "--family", help="One family only."), root: Path = ROOT
) -> None:
    """Optuna studies for every family of TASK (CV on training folds; resumes from optuna/)."""
    if family:
        _run(model_stages.tune_family, root, task=task, family_name=family)
    else:
        _run(model_stages.tune_task, root, task=task)


@app.command()
def train(task: str = TASK, root: Path = ROOT) -> None:
    """Fit every tuned family of TASK on both protocols' training rows; pick the CV winner (or the blend)."""
    _run(model_stages.fit_task, root, task=task)


@app.command()
def evaluate(task: str = TASK, root: Path = ROOT) -> None:
    """Holdout metrics of every family of TASK under both protocols; plots and comparison in reports/TASK/."""
    _run(model_stages.evaluate_task, root, task=task)


@app.command()
def register(task: str = TASK, root: Path = ROOT) -> None:
    """Register TASK's selected model in MLflow: challenger always, champion when it wins on the holdout."""
    _run(model_stages.register_task, root, task=task)


@app.command()
def ablation(root: Path = ROOT) -> None:
    """Feature-group ablation under both holdouts (reports/ablation.md); needs featurize and split outputs."""
    _run(stages.ablation, root)


@app.command()
def run(
    root: Path = ROOT,
    fetch: bool = typer.Option(False, help="Fetch the raw data first."),
    profile: str = typer.Option(None, "--profile", help="Tuning profile from params.yaml (default, full)."),
) -> None:
    """Run the whole training flow with Prefect (ephemeral, no server needed)."""
    from flows.training import training

    try:
        training(root=str(root), fetch=fetch, profile=profile)
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc


@app.command()
def promote(
    model: str = typer.Argument(..., help="Registered model name, e.g. popularity."),
    version: str = typer.Argument(..., help="Model version to make champion."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (recorded on the version)."),
    who: str = typer.Option(None, "--who", help="Who promotes (default: the current user)."),
    root: Path = ROOT,
) -> None:
    """Make VERSION the champion of MODEL by hand, recording who and why."""
    from components.registry import promote_by_hand

    paths = ProjectPaths.at(root)
    client, _ = stages.mlflow_client(paths, stages.params_for(paths))
    previous = promote_by_hand(client, model, version, who or getpass.getuser(), reason)
    typer.echo(f"{model}: champion is now v{version} (was {previous or 'none'})")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
