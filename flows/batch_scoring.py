"""Batch scoring: every pending batch in data/incoming/ (or the one given) -> validated with the scoring
suite -> scored by the champions -> data/predictions/<batch>.parquet. A rejected batch is moved to
data/rejected/.

Run with `trackflow score` (ephemeral Prefect) or as the daily deployment of `trackflow serve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.params import Params
from flows.artifacts import SCORING_KEY, publish, scoring_markdown
from trackflow.lock import project_lock
from trackflow.paths import ProjectPaths
from trackflow.stages import scoring as scoring_stage
from trackflow.stages.common import params_for


@task(name="score_batch", cache_policy=NO_CACHE)
def score_batch_task(root: str, params: Params, batch: str) -> dict[str, Any]:
    """A rejected batch is an outcome of its data, kept aside and reported, so the task completes; anything
    else that raises (the store, a champion that does not load) fails it."""
    try:
        return scoring_stage.score_file(ProjectPaths.at(root), params, Path(batch))
    except scoring_stage.BatchRejected as rejected:
        get_run_logger().warning("%s", rejected)
        return rejected.outcome()


@flow(name="batch_scoring", log_prints=True)
def batch_scoring(root: str = ".", batch: str | None = None) -> dict[str, Any]:
    """Score `batch` (a path), or every batch in the incoming folder without up-to-date predictions. Ends
    Completed when every batch was scored or rejected and kept; fails only when the system did."""
    logger = get_run_logger()
    paths = ProjectPaths.project(root)  # a root from the Prefect UI must be a trackflow project
    params = params_for(paths)  # once: every task gets this frozen object
    with project_lock(paths, "batch_scoring flow", params.runs.lock_wait_s, logger):
        return _score_batches(paths, params, batch, logger)


def _score_batches(paths: ProjectPaths, params: Params, batch: str | None, logger: Any) -> dict[str, Any]:
    root = str(paths.root)
    batches = [Path(batch)] if batch else scoring_stage.pending_batches(paths, params)
    if not batches:
        logger.info("nothing to score in %s", scoring_stage.incoming_dir(paths, params))
        return {"scored": [], "rejected": [], "failed": []}
    logger.info("%d batch(es) to score: %s", len(batches), [p.name for p in batches])
    # Sequential: each batch is chunked and scored at full speed already; a bad one does not stop the rest.
    states = {path: score_batch_task(root, params, str(path), return_state=True) for path in batches}
    scored, rejected, failed = [], [], []
    for path, state in states.items():
        if not state.is_completed():
            failed.append({"batch": path.name, "error": str(state.message)})
            logger.error("%s could not be scored: %s", path.name, state.message)
            continue
        outcome = state.result()
        if outcome["status"] == "rejected":
            rejected.append(outcome)
            continue
        scored.append(outcome)
        models = ", ".join(f"{t} v{m['version']}" for t, m in outcome["models"].items())
        print(
            f"{outcome['batch']}: {outcome['rows_scored']:,} of {outcome['rows_in']:,} rows scored "
            f"({outcome['rows_per_s']:,.0f} rows/s) with {models} -> {outcome['predictions_path']}"
        )
    publish(SCORING_KEY, scoring_markdown(scored, rejected, failed), "rows scored, rejected and quarantined")
    if failed:
        raise scoring_stage.ScoringError("; ".join(f"{f['batch']}: {f['error']}" for f in failed))
    print(f"{len(scored)} batch(es) scored, {len(rejected)} rejected (kept in {paths.rejected_dir})")
    return {"scored": scored, "rejected": rejected, "failed": failed}


if __name__ == "__main__":
    batch_scoring()
