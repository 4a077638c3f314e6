"""How a stage runs its parts side by side (the families of `tune`, the parts of `discover`), without knowing
who runs them: one after the other, on a thread pool (the CLI and DVC), or as Prefect tasks (flows/).

A stage that fans out takes `parts: Parts` and calls `parts.map(label, function, items)`; every item's outcome
comes back, failed or not, so the stage decides whether one failure stops it (discovery) or not (tuning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

# The project's budget of parallel parts: two fits at once on the two cores it is sized for.
PARALLEL_PARTS = 2


@dataclass(frozen=True)
class PartOutcome:
    result: dict[str, Any] | None = None
    error: str | None = None  # "Type: message" when the part raised
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, exc: BaseException) -> PartOutcome:
        return cls(error=f"{type(exc).__name__}: {exc}", exception=exc)


PartFunction = Callable[[str], dict[str, Any]]


class Parts(Protocol):
    def map(self, label: str, function: PartFunction, items: Sequence[str]) -> dict[str, PartOutcome]:
        """Run `function(item)` for every item; `label` names the stage (`tune@genre`) in logs and UIs."""
        ...


class SerialParts:
    """One part after the other, in this thread."""

    def map(self, label: str, function: PartFunction, items: Sequence[str]) -> dict[str, PartOutcome]:
        del label
        outcomes = {}
        for item in items:
            try:
                outcomes[item] = PartOutcome(result=function(item))
            except Exception as exc:  # the stage decides what one failure means
                outcomes[item] = PartOutcome.failed(exc)
        return outcomes


@dataclass(frozen=True)
class ThreadParts:
    """Parts on a pool of `workers` threads: the fits release the GIL in their native code."""

    workers: int = PARALLEL_PARTS

    def map(self, label: str, function: PartFunction, items: Sequence[str]) -> dict[str, PartOutcome]:
        del label
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {item: pool.submit(function, item) for item in items}
            outcomes = {}
            for item, future in futures.items():
                try:
                    outcomes[item] = PartOutcome(result=future.result())
                except Exception as exc:
                    outcomes[item] = PartOutcome.failed(exc)
        return outcomes


SERIAL = SerialParts()


def raise_first_failure(outcomes: dict[str, PartOutcome]) -> dict[str, dict[str, Any]]:
    """The results of parts that must all succeed; the first failure is raised as it was."""
    for outcome in outcomes.values():
        if outcome.exception is not None:
            raise outcome.exception
    return {item: outcome.result or {} for item, outcome in outcomes.items()}
