"""Audio scoring: a folder of audio files -> features (data/audio/<batch>/, checked with the scoring suite)
-> the champions' predictions (data/predictions/<batch>.parquet) and a per-file summary.

Run with `trackflow score-audio FOLDER` (ephemeral Prefect, no server needed).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.params import Params
from trackflow.lock import project_lock
from trackflow.paths import ProjectPaths, checked_name
from trackflow.stages import audio as audio_stage
from trackflow.stages.common import params_for


@task(name="extract_audio", cache_policy=NO_CACHE)
def extract_audio_task(
    root: str, params: Params, source: str, batch: str | None, workers: int | None, progress: bool
) -> dict[str, Any]:
    return audio_stage.extract_audio(ProjectPaths.at(root), params, source, batch, workers, progress)


@task(name="score_audio", cache_policy=NO_CACHE)
def score_audio_task(root: str, params: Params, batch: str) -> dict[str, Any]:
    return audio_stage.score_audio(ProjectPaths.at(root), params, batch)


@flow(name="score_audio", log_prints=True)
def score_audio(
    root: str = ".",
    source: str = ".",
    batch: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Extract the features of the audio files in `source`, then score them with the champions."""
    logger = get_run_logger()
    paths = ProjectPaths.project(root)  # a root from the Prefect UI must be a trackflow project
    if batch is not None:
        checked_name("batch", batch)  # before any file is touched
    params = params_for(paths)  # once: both tasks get this frozen object
    with project_lock(paths, "score_audio flow", params.runs.lock_wait_s, logger):
        extracted = extract_audio_task(root, params, source, batch, workers, progress)
        scored = score_audio_task(root, params, extracted["batch"])
    logger.info(
        "%s: %d of %d file(s) extracted (%.1f s of audio, %.1f s of audio per second per core); %d skipped",
        extracted["batch"],
        extracted["tracks"],
        extracted["files"],
        extracted["analysed_seconds"],
        extracted["audio_seconds_per_second_per_core"],
        len(extracted["errors"]),
    )
    models = ", ".join(f"{t} v{m['version']}" for t, m in scored["models"].items())
    print(
        f"{scored['batch']}: {scored['rows_scored']} of {extracted['files']} file(s) scored with {models} "
        f"-> {scored['predictions_path']} (per file: {scored['files_path']})"
    )
    return {"extract": extracted, "score": scored}


if __name__ == "__main__":
    score_audio()
