"""`trackflow`: the command line. Each stage command is what dvc.yaml runs; `run` runs the Prefect flow. The
console command starts in trackflow/entry.py, which applies the process settings first.

Over 400 lines because it is one Typer app of about 25 commands: each is a few lines of options that call a
stage or a flow, and splitting them would scatter the command line a user reads with `--help`."""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from components.discovery import PARTS, DiscoveryInputError
from components.ingest import IngestError
from components.io import write_text
from components.labels import LabelError
from components.tasks import TASKS
from components.validation import DataValidationError
from trackflow.acquire import DataAcquisitionError
from trackflow.config import ParamsError
from trackflow.lock import ProjectLockedError, project_lock
from trackflow.parts import ThreadParts
from trackflow.paths import InvalidNameError, ProjectPaths, checked_name
from trackflow.stages import audio as audio_stage
from trackflow.stages import data as data_stage
from trackflow.stages import labels as labels_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for
from trackflow.stages.discovery import discover as discover_stage
from trackflow.stages.discovery import register as register_discovery_stage
from trackflow.stages.discovery.queries import find_similar, make_playlist
from trackflow.stages.evaluate import evaluate_task
from trackflow.stages.register import register_task
from trackflow.stages.scoring import ScoringError
from trackflow.stages.train import fit_task
from trackflow.stages.training import TrainingError
from trackflow.stages.tune import tune_family, tune_task

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
    TrainingError,
    ScoringError,
    audio_stage.AudioBatchError,
    DiscoveryInputError,
    InvalidNameError,
    ProjectLockedError,
    LabelError,
)


def _run(stage: Callable[..., dict[str, Any]], root: Path, **kwargs: Any) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO is setup chatter
    paths = ProjectPaths.at(root)
    try:
        params = params_for(paths)
        # A single stage (what `dvc repro` runs) writes stage outputs too: one writer at a time.
        with project_lock(paths, f"trackflow {stage.__name__}", params.runs.lock_wait_s):
            summary = stage(paths, params, **kwargs)
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
    _run(data_stage.fetch_data, root, tracks_csv=tracks_csv)


@app.command()
def ingest(root: Path = ROOT) -> None:
    """Raw CSV -> typed data/interim/tracks.parquet, index column dropped."""
    _run(data_stage.ingest, root)


@app.command()
def validate(root: Path = ROOT) -> None:
    """The Great Expectations gate: reject bad batches, quarantine a few bad rows."""
    _run(data_stage.validate, root)


@app.command()
def featurize(root: Path = ROOT) -> None:
    """Validated listings -> one row per track (data/features/tracks.parquet)."""
    _run(data_stage.featurize, root)


@app.command()
def split(root: Path = ROOT) -> None:
    """Seeded grouped holdouts by primary artist and by track (data/splits/)."""
    _run(data_stage.split, root)


def _plain_name(kind: str) -> Callable[[str | None], str | None]:
    """An option callback: a name that becomes part of a path must be a plain name (paths.checked_name)."""

    def check(value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return checked_name(kind, value)
        except InvalidNameError as exc:
            raise typer.BadParameter(str(exc)) from exc

    return check


def _known_task(value: str) -> str:
    if value not in TASKS:
        raise typer.BadParameter(f"{value!r} is not a task; choose one of {', '.join(TASKS)}")
    return value


TASK = typer.Option(..., "--task", "-t", help=f"One of {', '.join(TASKS)}.", callback=_known_task)


@app.command()
def tune(
    task: str = TASK, family: str = typer.Option(None, "--family", help="One family only."), root: Path = ROOT
) -> None:
    """Optuna studies for every family of TASK (CV on training folds; resumes from optuna/)."""
    if family:
        _run(tune_family, root, task=task, family_name=family)
    else:  # the families side by side, as the flow runs them
        _run(tune_task, root, task=task, parts=ThreadParts())


@app.command()
def train(task: str = TASK, root: Path = ROOT) -> None:
    """Fit every tuned family of TASK on both protocols' training rows; pick the CV winner (or the blend)."""
    _run(fit_task, root, task=task)


@app.command()
def evaluate(task: str = TASK, root: Path = ROOT) -> None:
    """Holdout metrics of every family of TASK under both protocols; plots and comparison in reports/TASK/."""
    _run(evaluate_task, root, task=task)


@app.command()
def register(task: str = TASK, root: Path = ROOT) -> None:
    """Register TASK's selected model in MLflow: challenger always, champion when it wins on the holdout."""
    _run(register_task, root, task=task)


@app.command()
def ablation(root: Path = ROOT) -> None:
    """Feature-group ablation under both holdouts (reports/ablation.md); needs featurize and split outputs."""
    _run(data_stage.ablation, root)


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
    model: str = typer.Argument(
        ..., help="Registered model name, e.g. popularity.", callback=_plain_name("model")
    ),
    version: str = typer.Argument(..., help="Model version to make champion."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (recorded on the version)."),
    who: str = typer.Option(None, "--who", help="Who promotes (default: the current user)."),
    root: Path = ROOT,
) -> None:
    """Make VERSION the champion of MODEL by hand, recording who and why."""
    from trackflow.tracking import Tracker, promote_by_hand

    paths = ProjectPaths.at(root)
    client = Tracker.for_project(paths, params_for(paths)).client
    previous = promote_by_hand(client, model, version, who or getpass.getuser(), reason)
    typer.echo(f"{model}: champion is now v{version} (was {previous or 'none'})")


# --- batch scoring, drift monitoring, schedules ---
def _flow(run_flow: Callable[[], Any]) -> Any:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        return run_flow()
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc


@app.command()
def score(
    batch: Path = typer.Option(None, "--batch", "-b", help="A batch file (default: every pending batch)."),
    root: Path = ROOT,
) -> None:
    """Score the batches (parquet/csv) in data/incoming/ with the champions -> data/predictions/."""
    from flows.batch_scoring import batch_scoring

    result = _flow(lambda: batch_scoring(root=str(root), batch=str(batch) if batch else None))
    # Rejections are the gate doing its job: reported, exit 0. A system failure raised above (exit 1).
    for rejected in result["rejected"]:
        typer.secho(f"rejected {rejected['batch']}: {rejected['reason']}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{len(result['scored'])} batch(es) scored, {len(result['rejected'])} rejected")


@app.command()
def label(
    batch: str = typer.Argument(..., help="A scored batch's name.", callback=_plain_name("batch")),
    labels: Path = typer.Argument(..., help="CSV or parquet: track_id, and popularity and/or track_genre."),
    root: Path = ROOT,
) -> None:
    """Attach observed outcomes to a scored batch -> data/labels/ (through the gate); training learns them."""
    _run(labels_stage.label_batch, root, batch=batch, labels_path=labels)


@app.command()
def monitor(
    batch: str = typer.Option(
        None,
        "--batch",
        "-b",
        help="A scored batch's name (default: the latest).",
        callback=_plain_name("batch"),
    ),
    retrain: bool = typer.Option(None, "--retrain/--no-retrain", help="Override params.yaml drift.retrain."),
    root: Path = ROOT,
) -> None:
    """Drift and realised error of a scored batch; retrains on drift (or worse error) with new labels."""
    from flows.drift_monitoring import drift_monitoring

    _flow(lambda: drift_monitoring(root=str(root), batch=batch, retrain=retrain))


@app.command("simulate-batch")
def simulate_batch(
    drift: str = typer.Option("none", "--drift", help="none, genre_mix, louder or shorter."),
    rows: int = typer.Option(None, "--rows", help="Batch size (default: params.yaml simulate.rows)."),
    name: str = typer.Option(
        None, "--name", help="Batch name (default: simulated-<drift>-<seed>).", callback=_plain_name("batch")
    ),
    root: Path = ROOT,
) -> None:
    """Write a realistic incoming batch from held-out real rows into data/incoming/, optionally shifted."""
    from components.simulate import SHIFTS

    if drift not in SHIFTS:
        raise typer.BadParameter(f"--drift {drift!r}: choose one of {', '.join(SHIFTS)}")
    _run(simulate_stage.simulate, root, drift=drift, rows=rows, name=name)


@app.command()
def serve(root: Path = ROOT) -> None:
    """Serve the training (weekly), batch scoring (daily) and drift monitoring (daily) deployments from this
    process, on the cron schedules of configs/schedules.yaml. Set PREFECT_API_URL to a server to see them."""
    from flows.deployments import serve as serve_deployments
    from flows.schedules import load_schedules

    for spec in load_schedules(ProjectPaths.at(root).schedules_config).values():
        typer.echo(f"serving {spec.full_name:<26} cron '{spec.cron}' ({spec.timezone})")
    serve_deployments(root)


@app.command("serve-models")
def serve_models(
    host: str = typer.Option(None, "--host", help="Address to bind (default: serve.host, 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default: serve.port)."),
    root: Path = ROOT,
) -> None:
    """The champions over HTTP: /predict, /invocations (MLflow's protocol), /similar, /playlist, /health."""
    from trackflow.server import serve as serve_models_app

    paths = ProjectPaths.project(root)
    try:
        serve_models_app(paths, params_for(paths), host, port)
    except (*USER_ERRORS, RuntimeError) as exc:
        typer.secho(f"error [serve-models]: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc


@app.command()
def explore(
    port: int = typer.Option(8501, "--port", help="Port of the app."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    root: Path = ROOT,
) -> None:
    """The explorer: a Streamlit app (prediction, track map, genres, artists, playlists, registry)."""
    import os
    import subprocess
    import sys

    import trackflow.explorer

    paths = ProjectPaths.project(root)  # a clear error before Streamlit starts
    command = [sys.executable, "-m", "streamlit", "run", trackflow.explorer.__file__]
    command += [f"--server.address={host}", f"--server.port={port}", "--server.headless=true"]
    command += ["--browser.gatherUsageStats=false"]
    typer.echo(f"explorer on http://{host}:{port} for {paths.root}")
    raise typer.Exit(subprocess.call(command, env={**os.environ, "TRACKFLOW_ROOT": str(paths.root)}))


# --- audio files (docs/audio_features.md) ---
AUDIO_PATH = typer.Argument(..., help="A folder of audio files (wav, flac, ogg, mp3) or one file.")
AUDIO_BATCH = typer.Option(
    None, "--batch", "-b", help="Batch name (default: audio-<folder name>).", callback=_plain_name("batch")
)
AUDIO_WORKERS = typer.Option(None, "--workers", "-j", help="Worker processes (default: audio.workers).")


@app.command("score-audio")
def score_audio(
    path: Path = AUDIO_PATH, batch: str = AUDIO_BATCH, workers: int = AUDIO_WORKERS, root: Path = ROOT
) -> None:
    """Audio files -> features -> the champions' predictions (data/predictions/), printed per file."""
    from flows.score_audio import score_audio as score_audio_flow

    source = str(path.resolve())
    result = _flow(lambda: score_audio_flow(str(root), source, batch, workers, progress=True))
    typer.echo(audio_stage.format_files(result["score"]["files"]))


@app.command("extract-audio")
def extract_audio(
    path: Path = AUDIO_PATH, batch: str = AUDIO_BATCH, workers: int = AUDIO_WORKERS, root: Path = ROOT
) -> None:
    """Audio files -> data/audio/<batch>/: dataset columns, descriptors, per-file errors (no scoring)."""
    _run(audio_stage.extract_audio, root, source=path.resolve(), batch=batch, workers=workers, progress=True)


# --- discovery: clusters, outliers, similar tracks, playlists (trackflow/stages/discovery/) ---
DISCOVERY_PARTS = (*PARTS, "summary")


def _discovery_part(value: str | None) -> str | None:
    if value is not None and value not in DISCOVERY_PARTS:
        raise typer.BadParameter(f"{value!r} is not a part; choose one of {', '.join(DISCOVERY_PARTS)}")
    return value


@app.command()
def discover(
    part: str = typer.Option(
        None, "--part", help=f"One part: {', '.join(DISCOVERY_PARTS)}.", callback=_discovery_part
    ),
    root: Path = ROOT,
) -> None:
    """Discovery stages (what dvc.yaml runs): one --part, or every part and then the summary."""

    _run(discover_stage.discover, root, part=part, parts=ThreadParts())


@app.command("register-discovery")
def register_discovery(root: Path = ROOT) -> None:
    """Register clusters, outliers and similar-tracks: challenger always, champion when the gate passes."""

    _run(register_discovery_stage.register_discovery, root)


@app.command("run-discovery")
def run_discovery(root: Path = ROOT) -> None:
    """The discovery flow with Prefect (prepares features and splits first when they are missing)."""
    from flows.discovery import discovery

    _flow(lambda: discovery(root=str(root)))  # the flow prints its own summary


def _query(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return run()
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc


AS_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
GENRE_WEIGHT = typer.Option(
    None, "--genre-weight", min=0.0, help="Pull same-genre tracks closer (default: discovery.similar)."
)


@app.command()
def similar(
    query: str = typer.Argument(..., help="A catalogue track_id, or an audio file (wav, flac, ogg, mp3)."),
    k: int = typer.Option(None, "-k", min=1, help="How many neighbours (default: discovery.similar.k)."),
    genre_weight: float = GENRE_WEIGHT,
    as_json: bool = AS_JSON,
    root: Path = ROOT,
) -> None:
    """The tracks nearest QUERY in the audio space, never QUERY itself or other releases of the same song."""

    paths = ProjectPaths.at(root)
    result = _query(lambda: find_similar(paths, params_for(paths), query, k, genre_weight))
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    import pandas as pd

    described = result["query"]
    typer.echo(f"query: {described['track_name']} - {described.get('artists', described.get('path'))}")
    table = pd.DataFrame(result["neighbours"])[["rank", "track_name", "artists", "track_genre", "distance"]]
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}", max_colwidth=40))
    timing = result["timing_ms"]
    typer.secho(
        f"index load {timing['load']:.0f} ms, audio extraction {timing['extract']:.0f} ms, "
        f"query {timing['query']:.1f} ms",
        err=True,
        fg=typer.colors.BRIGHT_BLACK,
    )


@app.command()
def playlist(
    seed: list[str] = typer.Option(None, "--seed", help="A seed track_id (repeat for several)."),
    target: list[str] = typer.Option(
        None, "--target", help="energy=0.8, tempo=120:130 or valence=high|low (repeat for several)."
    ),
    n: int = typer.Option(None, "-n", min=2, help="Playlist length (default: discovery.playlist.n)."),
    genre_weight: float = GENRE_WEIGHT,
    as_json: bool = AS_JSON,
    root: Path = ROOT,
) -> None:
    """A playlist from seed tracks or target preferences, ordered for smooth tempo and key transitions."""

    paths = ProjectPaths.at(root)
    result = _query(
        lambda: make_playlist(paths, params_for(paths), list(seed or []), list(target or []), n, genre_weight)
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    import pandas as pd

    typer.echo(pd.DataFrame(result["tracks"]).to_string(index=False, max_colwidth=32))
    moves = result["transitions"]
    summary = (
        f"mean |tempo step| {moves['mean_abs_tempo_step']:.1f} BPM (random order "
        f"{moves['random_mean_abs_tempo_step']:.1f}), Camelot steps {moves['mean_key_steps']:.2f} "
        f"(random {moves['random_mean_key_steps']:.2f})"
    )
    if "adherence" in result:
        summary += f"; {result['adherence']['share_within_all']:.0%} meet every target"
    typer.echo(summary)
    if "warning" in result:
        typer.secho(result["warning"], fg=typer.colors.YELLOW, err=True)
    timing = result["timing_ms"]
    timing_line = f"index load {timing['load']:.0f} ms, playlist {timing['build']:.1f} ms"
    typer.secho(timing_line, err=True, fg=typer.colors.BRIGHT_BLACK)


@app.command("dvc-yaml")
def dvc_yaml(
    check: bool = typer.Option(False, "--check", help="Exit 1 if dvc.yaml differs; write nothing."),
    root: Path = ROOT,
) -> None:
    """Write dvc.yaml from the pipeline definition (trackflow/pipeline.py), code and config deps included."""
    from trackflow.dependencies import check_definition, render_dvc_yaml

    paths = ProjectPaths.at(root)
    check_definition()
    text = render_dvc_yaml(paths.root)
    current = paths.dvc_yaml.read_text(encoding="utf-8") if paths.dvc_yaml.is_file() else ""
    if check:
        if current != text:
            typer.secho(
                f"{paths.dvc_yaml} is stale: run `trackflow dvc-yaml` (make dvc-yaml)",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(code=1)
        typer.echo(f"{paths.dvc_yaml}: up to date with trackflow/pipeline.py")
        return
    if current == text:
        typer.echo(f"{paths.dvc_yaml}: unchanged")
        return
    write_text(text, paths.dvc_yaml)
    typer.echo(f"{paths.dvc_yaml}: written")
