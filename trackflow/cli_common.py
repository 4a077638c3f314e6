"""What every `trackflow` command shares: the project root option, the errors a user can fix, and running a
stage or a flow so that such an error is one clear message and exit code 1, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from components.discovery import DiscoveryInputError
from components.ingest import IngestError
from components.labels import LabelError
from components.validation import DataValidationError
from trackflow.acquire import DataAcquisitionError
from trackflow.config import ParamsError
from trackflow.lock import ProjectLockedError, project_lock
from trackflow.paths import InvalidNameError, ProjectPaths, checked_name
from trackflow.stages.audio import AudioBatchError
from trackflow.stages.common import params_for
from trackflow.stages.scoring import ScoringError
from trackflow.stages.training import TrainingError

T = TypeVar("T")
ROOT = typer.Option(Path("."), "--root", help="Project root (holds params.yaml and data/).")
# Errors a user can fix: printed as one clear message, exit code 1, no traceback.
USER_ERRORS = (
    DataAcquisitionError,
    IngestError,
    DataValidationError,
    ParamsError,
    FileNotFoundError,
    TrainingError,
    ScoringError,
    AudioBatchError,
    DiscoveryInputError,
    InvalidNameError,
    ProjectLockedError,
    LabelError,
)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO is setup chatter


def run_stage(stage: Callable[..., dict[str, Any]], root: Path, **kwargs: Any) -> None:
    """One stage (what `dvc repro` runs) under the project lock; its summary printed as JSON."""
    _configure_logging()
    paths = ProjectPaths.at(root)
    try:
        params = params_for(paths)
        # A single stage writes stage outputs too: one writer at a time.
        with project_lock(paths, f"trackflow {stage.__name__}", params.runs.lock_wait_s):
            summary = stage(paths, params, **kwargs)
    except USER_ERRORS as exc:
        typer.secho(f"error [{stage.__name__}]: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(json.dumps(summary, indent=2, default=str))


def guarded(call: Callable[[], T]) -> T:
    """`call()`, with an error a user can fix printed as one line and exit code 1."""
    try:
        return call()
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc


def run_flow(call: Callable[[], T]) -> T:
    """A Prefect flow run from the command line, its log on the console."""
    _configure_logging()
    return guarded(call)


def plain_name(kind: str) -> Callable[[str | None], str | None]:
    """An option callback: a name that becomes part of a path must be a plain name (paths.checked_name)."""

    def check(value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return checked_name(kind, value)
        except InvalidNameError as exc:
            raise typer.BadParameter(str(exc)) from exc

    return check
