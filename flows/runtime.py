"""The Prefect backend of trackflow.runner: a stage is a Prefect task (named by its DVC stage, `train`, with
the task in its run name, `train@genre`); a stage that fans out runs in the flow and its parts are the
tasks (`tune@genre-lightgbm`), submitted to the flow's task runner so that they run side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from trackflow.parts import PartFunction, PartOutcome, Parts

# Stages exchange files, and DVC decides what is up to date; Prefect runs every task it is asked to run,
# so no task caching (DataFrame-keyed caching is also a known source of misses in Prefect 3).
_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "retries": 0}


@task(name="stage", **_OPTIONS)
def _stage(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return call()


@task(name="part", **_OPTIONS)
def _part(function: PartFunction, item: str) -> dict[str, Any]:
    return function(item)


def _task_name(label: str) -> str:
    return label.split("@", 1)[0]


class PrefectParts:
    def map(self, label: str, function: PartFunction, items: Sequence[str]) -> dict[str, PartOutcome]:
        futures = {
            item: _part.with_options(name=_task_name(label), task_run_name=f"{label}-{item}").submit(
                function, item
            )
            for item in items
        }
        outcomes = {}
        for item, future in futures.items():
            future.wait()
            if future.state.is_completed():
                outcomes[item] = PartOutcome(result=future.result())
                continue
            error = future.result(raise_on_failure=False)
            if isinstance(error, BaseException):
                outcomes[item] = PartOutcome.failed(error)
            else:  # crashed or cancelled: no exception object, the state says why
                outcomes[item] = PartOutcome(error=f"{future.state.name}: {future.state.message}")
        return outcomes


class PrefectBackend:
    def stage(self, label: str, call: Callable[[], dict[str, Any]], fans_out: bool) -> dict[str, Any]:
        if fans_out:
            # Run in the flow: a task submitting tasks would hold one of the runner's threads while they wait.
            return call()
        return _stage.with_options(name=_task_name(label), task_run_name=label)(call)

    def parts(self) -> Parts:
        return PrefectParts()
