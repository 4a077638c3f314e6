"""The train stage's study plots: Optuna's matplotlib history and importance, written without its
ExperimentalWarning in every log."""

from __future__ import annotations

from pathlib import Path

import optuna


def test_study_plots_are_written_without_optuna_experimental_warnings(tmp_path: Path) -> None:
    import warnings

    from trackflow.stages.train import study_plots

    storage = f"sqlite:///{tmp_path / 'plots.db'}"
    study = optuna.create_study(storage=storage, study_name="toy", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.3) ** 2 + t.suggest_int("k", 1, 5), n_trials=6)
    with warnings.catch_warnings():
        # As an error, a leaking ExperimentalWarning would stop the plot, and its file would be missing.
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        written = study_plots({"study_name": "toy", "storage": storage, "family": "toy"}, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["toy_history.png", "toy_importance.png"]
    assert all(p.stat().st_size > 0 for p in written)
