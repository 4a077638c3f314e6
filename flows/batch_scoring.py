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
from components.validation import DataValidationError
from trackflow.paths import ProjectPaths
from trackflow.stages import scoring as scoring_stage
from trackflow.stages.common import params_for


@task(name="score_batch", cache_policy=NO_CACHE)
def score_batch_task(root: str, params: Params, batch: str) -> dict[str, Any]:
    return scoring_stage.score_file(ProjectPaths.at(root), params, Path(batch))


@flow(name="batch_scoring", log_prints=True)
def batch_scoring(root: str = ".", batch: str | None = None) -> dict[str, Any]:
    """Score `batch` (a path), or every batch in the incoming folder without up-to-date predictions."""
    logger = get_run_logger()
    paths = ProjectPaths.at(root)
    params = params_for(paths)  # once: every task gets this frozen object
    batches = [Path(batch)] if batch else scoring_stage.pending_batches(paths, params)
    if not batches:
        logger.info("nothing to score in %s", scoring_stage.incoming_dir(paths, params))
        return {"scored": [], "rejected": []}
    logger.info("%d batch(es) to score: %s", len(batches), [p.name for p in batches])
    # Sequential: each batch is chunked and scored at full speed already; a bad one does not stop the rest.
    states = {path: score_batch_task(root, params, str(path), return_state=True) for path in batches}
    scored, rejected = [], []
    for path, state in states.items():
        if state.is_completed():
            summary = state.result()
            scored.append(summary)
            models = ", ".join(f"{t} v{m['version']}" for t, m in summary["models"].items())
            print(
                f"{summary['batch']}: {summary['rows_scored']:,} of {summary['rows_in']:,} rows scored "
                f"({summary['rows_per_s']:,.0f} rows/s) with {models} -> {summary['predictions_path']}"
            )
        else:
            rejected.append({"batch": path.name, "error": str(state.message)})
            logger.error("%s rejected: %s", path.name, state.message)
    if rejected and (batch or not scored):
        raise DataValidationError("; ".join(f"{r['batch']}: {r['error']}" for r in rejected), [])
    return {"scored": scored, "rejected": rejected}


if __name__ == "__main__":
    batch_scoring()
