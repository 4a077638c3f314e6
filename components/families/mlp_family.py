"""The MLP family: the PyTorch network of components/torch_mlp.py with genre and artist-bucket embeddings,
early stopping on epochs and per-epoch pruning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from components.families.base import MAX_THREADS, Family
from components.tasks import TaskKind

if TYPE_CHECKING:
    import optuna


class MLPFamily(Family):
    name = "mlp"
    needs_scaling = True
    iterations_param = "max_epochs"
    patience_param = "patience"
    # Integer genre_index / artist_bucket columns, which the network embeds (trees do better without).
    extra_feature_groups = ("ids",)
    defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 128,
        "n_layers": 2,
        "dropout": 0.1,
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 256,
        "max_epochs": 30,
        "patience": 5,
        "embedding_dim": 8,
        "embed_artist": False,
    }

    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        from components.torch_mlp import TorchMLPClassifier, TorchMLPRegressor  # torch loads only when used

        p = self.resolve_params(params)
        k = self.n_outputs(task, n_classes)
        common = {
            **p,
            "seed": seed,
            "device": "cuda" if device == "cuda" else "cpu",
            "n_threads": MAX_THREADS,
        }
        if task == "regression":
            return TorchMLPRegressor(**common)
        return TorchMLPClassifier(n_classes=k, **common)

    def fit(
        self,
        estimator: Any,
        X: Any,
        y: np.ndarray,
        *,
        sample_weight: np.ndarray | None = None,
        eval_set: tuple[Any, np.ndarray] | None = None,
        trial: optuna.Trial | None = None,
    ) -> Any:
        callback = None
        if trial is not None and eval_set is not None:
            import optuna

            def callback(epoch: int, val_loss: float) -> None:
                trial.report(val_loss, step=epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return estimator.fit(X, y, sample_weight=sample_weight, eval_set=eval_set, epoch_callback=callback)

    def kept_iterations(self, estimator: Any) -> int | None:
        best = int(getattr(estimator, "best_epoch_", -1))  # 0-based; -1 without an eval set
        return best + 1 if best >= 0 else None
