"""Lab 5's classifier as a LightningModule: `nn.Linear(F, 1)` + sigmoid, binary cross-entropy, torchmetrics metrics."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)

from logreg.errors import ConfigError

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "lbfgs": torch.optim.LBFGS,
}


def check_optimizer(options: Mapping) -> None:
    """Refuse an optimizer config that would fail later, naming the bad key and the valid choices."""
    name = options.get("name")
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer name {name!r} is unknown; expected one of: {', '.join(OPTIMIZERS)}")
    parameters = inspect.signature(OPTIMIZERS[name]).parameters
    unknown = sorted(set(options) - {"name"} - set(parameters))
    if unknown:
        valid = ", ".join(p for p in parameters if p != "params")
        raise ConfigError(f"optimizer {name!r} has no option {', '.join(unknown)}; its options are: {valid}")
    lr = options.get("lr", parameters["lr"].default)
    if not (isinstance(lr, (int, float)) and 0 < lr < torch.finfo(torch.float32).max):
        raise ConfigError(f"optimizer lr={lr!r}: expected a positive float32 number (lab 5 uses lr=1)")


class LogisticRegression(L.LightningModule):
    """p(y=1 | x) = sigmoid(w . (x - mean) / std + b), trained by minimizing the mean binary cross-entropy.

    `mean` and `std` are buffers, 0 and 1 (features as given) unless the DataModule standardizes: then `fit` copies
    its training-split statistics in, and checkpoints and exported models carry them, so raw rows go in everywhere.

    Args:
        n_features: F, the number of input features (8 for lab 5's diabetes data).
        optimizer: `name` (sgd, adam, adamw, lbfgs) and that torch optimizer's keyword arguments (lr, ...).
        threshold: probability at or above which a row is predicted 1.
    """

    def __init__(
        self,
        n_features: int = 8,
        optimizer: Mapping | None = None,
        threshold: float = 0.5,
    ):
        super().__init__()
        optimizer = dict(optimizer or {"name": "sgd", "lr": 1.0})
        check_optimizer(optimizer)
        if not (isinstance(n_features, int) and n_features > 0):
            raise ConfigError(f"n_features={n_features!r}: expected a positive integer")
        if not 0 < threshold < 1:
            raise ConfigError(f"threshold={threshold}: expected a probability strictly between 0 and 1")
        self.save_hyperparameters()
        self.linear = nn.Linear(n_features, 1)
        self.register_buffer("feature_mean", torch.zeros(n_features))  # (F,)
        self.register_buffer("feature_std", torch.ones(n_features))  # (F,), all > 0
        for stage in ("train", "val", "test"):
            # validate_args=False: the inputs are sigmoid outputs and 0/1 labels (checked when the data was read);
            # re-checking them every step costs more than the step itself on large batches.
            metrics = {"acc": BinaryAccuracy(threshold, validate_args=False)}
            if stage != "train":  # ranking and per-class metrics are for held-out rows, not every training step
                metrics |= {
                    "auroc": BinaryAUROC(validate_args=False),
                    "f1": BinaryF1Score(threshold, validate_args=False),
                    "precision": BinaryPrecision(threshold, validate_args=False),
                    "recall": BinaryRecall(threshold, validate_args=False),
                }
            setattr(self, f"{stage}_metrics", MetricCollection(metrics, prefix=f"{stage}/"))
            setattr(self, f"{stage}_loss", MeanMetric(nan_strategy="disable"))  # a NaN loss shows as NaN, not dropped

    def folded_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight (1, F) and bias (1,) that act on features as given: w / std and b - (w / std) . mean."""
        weight = self.linear.weight / self.feature_std
        return weight, self.linear.bias - weight @ self.feature_mean

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> logits (B,)"""
        # The scaling folded into w and b: no extra pass over the features. With mean 0 and std 1 this is
        # bit-for-bit nn.Linear, as in the lab.
        return F.linear(features, *self.folded_weights()).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> probabilities of class 1 (B,)"""
        return torch.sigmoid(self.logits(features))

    def setup(self, stage: str) -> None:
        feature_stats = getattr(self.trainer.datamodule, "feature_stats", None)
        if stage == "fit" and feature_stats is not None:  # (mean, std) of the training split, when it standardizes
            self.feature_mean.copy_(feature_stats[0])
            self.feature_std.copy_(feature_stats[1])

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and probabilities (B,) of one batch; the stage's metrics take them in."""
        features, labels = batch  # (B, F), (B,) in {0, 1}
        logits = self.logits(features)  # (B,)
        # BCE on logits is lab 5's sigmoid + F.binary_cross_entropy, without log(0) when a probability saturates.
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        # Each step only accumulates; _log_epoch logs once per epoch (a self.log call costs more than a small step).
        # Bool targets: the metrics take them as they are, without an int64 copy of the labels every step.
        probs = torch.sigmoid(logits.detach())
        getattr(self, f"{stage}_loss").update(loss.detach(), weight=len(labels))
        getattr(self, f"{stage}_metrics").update(probs, labels.bool())
        return loss, probs

    def _log_epoch(self, stage: str) -> None:
        """Log the epoch's metrics, computed over all processes' rows (torchmetrics syncs them), then reset."""
        in_bar = stage != "test"  # the bar shows loss and accuracy while fitting; test metrics get a table
        self.log(f"{stage}/loss", getattr(self, f"{stage}_loss"), prog_bar=in_bar)
        for name, metric in getattr(self, f"{stage}_metrics").items():
            self.log(name, metric, prog_bar=in_bar and name.endswith("/acc"))

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch, batch_idx):
        return self._shared_step(batch, "val")[1], batch[1]  # (probs, labels): for callbacks that draw curves

    def test_step(self, batch, batch_idx):
        return self._shared_step(batch, "test")[1], batch[1]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The data's class, so eval.py and predict.py rebuild the DataModule from the checkpoint alone.
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is not None:
            checkpoint["datamodule_class"] = f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"

    def predict_step(self, batch, batch_idx):
        features = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(features)

    def configure_optimizers(self):
        options = dict(self.hparams.optimizer)
        return OPTIMIZERS[options.pop("name")](self.parameters(), **options)
