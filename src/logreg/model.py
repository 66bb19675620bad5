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
            metrics = {"acc": BinaryAccuracy(threshold)}
            if stage != "train":  # ranking and per-class metrics are for held-out rows, not every training step
                metrics |= {
                    "auroc": BinaryAUROC(),
                    "f1": BinaryF1Score(threshold),
                    "precision": BinaryPrecision(threshold),
                    "recall": BinaryRecall(threshold),
                }
            setattr(self, f"{stage}_metrics", MetricCollection(metrics, prefix=f"{stage}/"))
            setattr(self, f"{stage}_loss", MeanMetric())

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> logits (B,)"""
        # w . (x - mean) / std + b, with the scaling folded into w and b: no extra pass over the features.
        # With mean 0 and std 1 this is bit-for-bit nn.Linear, as in the lab.
        weight = self.linear.weight / self.feature_std  # (1, F)
        bias = self.linear.bias - weight @ self.feature_mean  # (1,)
        return F.linear(features, weight, bias).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> probabilities of class 1 (B,)"""
        return torch.sigmoid(self.logits(features))

    def setup(self, stage: str) -> None:
        feature_stats = getattr(self.trainer.datamodule, "feature_stats", None)
        if stage == "fit" and feature_stats is not None:  # (mean, std) of the training split, when it standardizes
            self.feature_mean.copy_(feature_stats[0])
            self.feature_std.copy_(feature_stats[1])

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        features, labels = batch  # (B, F), (B,) in {0, 1}
        logits = self.logits(features)  # (B,)
        # BCE on logits is lab 5's sigmoid + F.binary_cross_entropy, without log(0) when a probability saturates.
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        loss_metric, metrics = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_metrics")
        loss_metric.update(loss.detach(), weight=len(labels))
        metrics.update(torch.sigmoid(logits.detach()), labels.long())
        in_bar = stage != "test"  # the bar shows loss and accuracy while fitting; test metrics get a table
        self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True, prog_bar=in_bar)
        for name, metric in metrics.items():
            self.log(name, metric, on_step=False, on_epoch=True, prog_bar=in_bar and name.endswith("/acc"))
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx):
        features = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(features)

    def configure_optimizers(self):
        options = dict(self.hparams.optimizer)
        return OPTIMIZERS[options.pop("name")](self.parameters(), **options)
