"""`trackflow`: the command line. Each stage command is what dvc.yaml runs; `run` runs the Prefect flow. The
console command starts in trackflow/entry.py, which applies the process settings first.

The discovery commands are in trackflow/cli_discovery.py, merged into this app (one `--help`); what every
command shares (the root option, the errors a user can fix, running a stage or a flow) is in
trackflow/cli_common.py."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from components.io import write_text
from components.tasks import TASKS
from trackflow.cli_common import ROOT, USER_ERRORS, plain_name, run_flow, run_stage
from trackflow.cli_discovery import discovery_commands
from trackflow.parts import ThreadParts
from trackflow.paths import ProjectPaths
from trackflow.stages import audio as audio_stage
from trackflow.stages import data as data_stage
from trackflow.stages import labels as labels_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for
from trackflow.stages.evaluate import evaluate_task
from trackflow.stages.register import register_task
from trackflow.stages.train import fit_task
from trackflow.stages.tune import tune_family, tune_task

app = typer.Typer(
    help="trackflow: the Spotify tracks MLOps pipeline.", no_args_is_help=True, add_completion=False
)
app.add_typer(discovery_commands)  # no name: its commands sit beside these


@app.command("fetch-data")
def fetch_data(
    root: Path = ROOT,
    tracks_csv: str = typer.Option(None, "--tracks-csv", envvar="TRACKS_CSV", help="Local dataset.csv(.gz)."),
) -> None:
    """Put the raw dataset in data/raw/: from TRACKS_CSV when set, else download dataset.csv."""
    run_stage(data_stage.fetch_data, root, tracks_csv=tracks_csv)


@app.command()
def ingest(root: Path = ROOT) -> None:
    """Raw CSV -> typed data/interim/tracks.parquet, index column dropped."""
    run_stage(data_stage.ingest, root)


@app.command()
def validate(root: Path = ROOT) -> None:
    """The Great Expectations gate: reject bad batches, quarantine a few bad rows."""
    run_stage(data_stage.validate, root)


@app.command()
def featurize(root: Path = ROOT) -> None:
    """Validated listings -> one row per track (data/features/tracks.parquet)."""
    run_stage(data_stage.featurize, root)


@app.command()
def split(root: Path = ROOT) -> None:
    """Seeded grouped holdouts by primary artist and by track (data/splits/)."""
    run_stage(data_stage.split, root)


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
        run_stage(tune_family, root, task=task, family_name=family)
    else:  # the families side by side, as the flow runs them
        run_stage(tune_task, root, task=task, parts=ThreadParts())


@app.command()
def train(task: str = TASK, root: Path = ROOT) -> None:
    """Fit every tuned family of TASK on both protocols' training rows; pick the CV winner (or the blend)."""
    run_stage(fit_task, root, task=task)


@app.command()
def evaluate(task: str = TASK, root: Path = ROOT) -> None:
    """Holdout metrics of every family of TASK under both protocols; plots and comparison in reports/TASK/."""
    run_stage(evaluate_task, root, task=task)


@app.command()
def register(task: str = TASK, root: Path = ROOT) -> None:
    """Register TASK's selected model in MLflow: challenger always, champion when it wins on the holdout."""
    run_stage(register_task, root, task=task)


@app.command()
def ablation(root: Path = ROOT) -> None:
    """Feature-group ablation under both holdouts (reports/ablation.md); needs featurize and split outputs."""
    run_stage(data_stage.ablation, root)


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
        ..., help="Registered model name, e.g. popularity.", callback=plain_name("model")
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
@app.command()
def score(
    batch: Path = typer.Option(None, "--batch", "-b", help="A batch file (default: every pending batch)."),
    root: Path = ROOT,
) -> None:
    """Score the batches (parquet/csv) in data/incoming/ with the champions -> data/predictions/."""
    from flows.batch_scoring import batch_scoring

    result = run_flow(lambda: batch_scoring(root=str(root), batch=str(batch) if batch else None))
    # Rejections are the gate doing its job: reported, exit 0. A system failure raised above (exit 1).
    for rejected in result["rejected"]:
        typer.secho(f"rejected {rejected['batch']}: {rejected['reason']}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{len(result['scored'])} batch(es) scored, {len(result['rejected'])} rejected")


@app.command()
def label(
    batch: str = typer.Argument(..., help="A scored batch's name.", callback=plain_name("batch")),
    labels: Path = typer.Argument(..., help="CSV or parquet: track_id, and popularity and/or track_genre."),
    root: Path = ROOT,
) -> None:
    """Attach observed outcomes to a scored batch -> data/labels/ (through the gate); training learns them."""
    run_stage(labels_stage.label_batch, root, batch=batch, labels_path=labels)


@app.command()
def monitor(
    batch: str = typer.Option(
        None,
        "--batch",
        "-b",
        help="A scored batch's name (default: the latest).",
        callback=plain_name("batch"),
    ),
    retrain: bool = typer.Option(None, "--retrain/--no-retrain", help="Override params.yaml drift.retrain."),
    root: Path = ROOT,
) -> None:
    """Drift and realised error of a scored batch; retrains on drift (or worse error) with new labels."""
    from flows.drift_monitoring import drift_monitoring

    run_flow(lambda: drift_monitoring(root=str(root), batch=batch, retrain=retrain))


@app.command("simulate-batch")
def simulate_batch(
    drift: str = typer.Option("none", "--drift", help="none, genre_mix, louder or shorter."),
    rows: int = typer.Option(None, "--rows", help="Batch size (default: params.yaml simulate.rows)."),
    name: str = typer.Option(
        None, "--name", help="Batch name (default: simulated-<drift>-<seed>).", callback=plain_name("batch")
    ),
    root: Path = ROOT,
) -> None:
    """Write a realistic incoming batch from held-out real rows into data/incoming/, optionally shifted."""
    from components.simulate import SHIFTS

    if drift not in SHIFTS:
        raise typer.BadParameter(f"--drift {drift!r}: choose one of {', '.join(SHIFTS)}")
    run_stage(simulate_stage.simulate, root, drift=drift, rows=rows, name=name)


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
    None, "--batch", "-b", help="Batch name (default: audio-<folder name>).", callback=plain_name("batch")
)
AUDIO_WORKERS = typer.Option(None, "--workers", "-j", help="Worker processes (default: audio.workers).")


@app.command("score-audio")
def score_audio(
    path: Path = AUDIO_PATH, batch: str = AUDIO_BATCH, workers: int = AUDIO_WORKERS, root: Path = ROOT
) -> None:
    """Audio files -> features -> the champions' predictions (data/predictions/), printed per file."""
    from flows.score_audio import score_audio as score_audio_flow

    source = str(path.resolve())
    result = run_flow(lambda: score_audio_flow(str(root), source, batch, workers, progress=True))
    typer.echo(audio_stage.format_files(result["score"]["files"]))


@app.command("extract-audio")
def extract_audio(
    path: Path = AUDIO_PATH, batch: str = AUDIO_BATCH, workers: int = AUDIO_WORKERS, root: Path = ROOT
) -> None:
    """Audio files -> data/audio/<batch>/: dataset columns, descriptors, per-file errors (no scoring)."""
    run_stage(
        audio_stage.extract_audio, root, source=path.resolve(), batch=batch, workers=workers, progress=True
    )


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
