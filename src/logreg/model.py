"""Lab 5's classifier as a LightningModule: `nn.Linear(F, 1)` + sigmoid, binary cross-entropy, torchmetrics metrics.

The module makes its own updates (manual optimization): each Lightning training step brings K mini-batches
(`logreg.splits.TrainingChunks`) and the module steps the optimizer once per mini-batch, with the gradient computed
in closed form (`logreg.gradient`, the default) or by autograd (`gradient=autograd`, lab 5's code and the tests'
oracle). Under DDP each update's gradient is averaged over the processes (one all-reduce of F + 2 numbers), as DDP
would, so the numbers are those of one process on the whole batch.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torchmetrics import CatMetric

from logreg.checking import check_arguments
from logreg.errors import ConfigError, TrainingDiverged
from logreg.gradient import bce_gradient, bce_gradient_and_hessian, bce_hessian
from logreg.metric_names import STAGE_METRICS, metric_mode
from logreg.metrics import choose_threshold, evaluation_metrics
from logreg.newton import MAX_FEATURES, Newton
from logreg.schema import (
    OPTIMIZERS,
    SCHEDULERS,
    ModelConfig,
    NewtonConfig,
    OptimizerConfig,
    PlateauConfig,
    SchedulerConfig,
)
from logreg.splits import minibatches
from logreg.stream import StreamedRows

TORCH_OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "lbfgs": torch.optim.LBFGS,
    "newton": Newton,
}
TORCH_SCHEDULERS = {
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "step": torch.optim.lr_scheduler.StepLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}


def torch_scheduler(optimizer: torch.optim.Optimizer, scheduler: SchedulerConfig) -> LRScheduler | ReduceLROnPlateau:
    """The torch scheduler `scheduler` configures, on `optimizer` (plateau: its mode follows from its monitor)."""
    options = dataclasses.asdict(scheduler)
    name = options.pop("name")
    if name == "plateau":
        monitor = options.pop("monitor")
        options["mode"] = metric_mode(monitor)  # a loss falls, an accuracy rises
    return TORCH_SCHEDULERS[name](optimizer, **options)


class LogisticRegression(L.LightningModule):
    """p(y=1 | x) = sigmoid(w . (x - mean) / std + b), trained by minimizing the mean binary cross-entropy.

    Args:
        n_features: F, the number of input features (8 for lab 5's diabetes data).
        optimizer: `name` (sgd, adam, adamw, lbfgs) and that torch optimizer's keyword arguments (lr, ...).
        threshold: probability at or above which a row is predicted 1.
        tune_threshold: None, or f1 / youden / cost: choose the threshold that maximizes this on the validation rows
            at every validation epoch (checkpoints carry it with the weights it was chosen for).
        cost_ratio: for tune_threshold="cost", what a false positive costs in false negatives.
        pos_weight: weight of class-1 rows in the training loss (1: lab 5's loss).
        gradient: "analytic" (closed form, fast) or "autograd".
        scheduler: None, or `name` (cosine, step, plateau) and that scheduler's keyword arguments; stepped once per
            epoch (plateau: on its `monitor`).
        feature_mean, feature_std: (F,) the scaler fitted on the training rows, or None (features as given). Folded
            into the weights, so raw rows go in everywhere (checkpoints, exports).
    """

    if TYPE_CHECKING:  # the buffers __init__ registers, for the type checker (nn.Module's attribute lookup is untyped);
        # not at run time, where TorchScript (LightningModule.to_torchscript) would read these annotations
        feature_mean: torch.Tensor
        feature_std: torch.Tensor
        threshold: torch.Tensor

    def __init__(
        self,
        n_features: int = 8,
        optimizer: Mapping | None = None,
        threshold: float = 0.5,
        tune_threshold: str | None = None,
        cost_ratio: float = 1.0,
        pos_weight: float = 1.0,
        gradient: str = "analytic",
        scheduler: Mapping | None = None,
        feature_mean: list[float] | None = None,
        feature_std: list[float] | None = None,
    ):
        super().__init__()
        optimizer = dict(optimizer or {"name": "sgd", "lr": 1.0})
        scheduler = dict(scheduler) if scheduler else None
        # The arguments, checked and typed; `save_hyperparameters` keeps them as given (plain values) in `hparams`, for
        # the checkpoint, from which `load_from_checkpoint` calls this constructor again.
        self.options: ModelConfig = self._checked(n_features, optimizer, scheduler, locals())
        self.optimizer_options: OptimizerConfig = self.options.optimizer  # ModelConfig declares these Any: the
        self.scheduler_options: SchedulerConfig | None = self.options.scheduler  # optimizer group picks the schema
        self.n_features = n_features
        self.save_hyperparameters()
        self.automatic_optimization = False  # the module steps the optimizer itself: K updates per Lightning step
        self.linear = nn.Linear(n_features, 1)
        self.register_buffer("feature_mean", torch.tensor(feature_mean or [0.0] * n_features))  # (F,)
        self.register_buffer("feature_std", torch.tensor(feature_std or [1.0] * n_features))  # (F,), all > 0
        self.register_buffer("threshold", torch.tensor(float(threshold)))  # () tuned on validation rows, if asked
        # Training metrics from sums: each update adds its loss sum and correct count (two tensor additions); at the
        # epoch's end the sums are added over processes (one all-reduce) and logged once.
        self._epoch_sums: tuple[torch.Tensor, torch.Tensor] | None = None  # () loss sum, () correct predictions
        self._epoch_rows = 0
        self._validated_epoch = -1  # the last training epoch that ran validation (the plateau scheduler's new value)
        # Held-out stages keep every logit and label (gathered over processes), for AUROC, the tuned threshold, plots.
        # nan_strategy="disable": CatMetric's default drops NaN logits (and not their labels), misaligning the two; a
        # NaN must reach the metrics, and the divergence check after the epoch.
        self.val_logits, self.val_labels = CatMetric(nan_strategy="disable"), CatMetric(nan_strategy="disable")
        self.test_logits, self.test_labels = CatMetric(nan_strategy="disable"), CatMetric(nan_strategy="disable")
        self._outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.newton_result: dict[str, Any] | None = None  # after a Newton step: converged, iterations, gradient_norm
        self.test_prefix = "test"  # what test metrics are logged as: eval.py names them by the rows it scores

    @staticmethod
    def _checked(n_features: Any, optimizer: dict, scheduler: dict | None, arguments: dict) -> ModelConfig:
        """The model's options (`ModelConfig`, with its typed `optimizer` and `scheduler`), or a ConfigError."""
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ConfigError(f"n_features={n_features!r}: expected a positive integer")
        if optimizer.get("name") not in OPTIMIZERS:
            raise ConfigError(f"model.optimizer.name={optimizer.get('name')}: expected one of {', '.join(OPTIMIZERS)}")
        typed_optimizer: OptimizerConfig = check_arguments(OPTIMIZERS[optimizer["name"]], optimizer, "model.optimizer.")
        if optimizer["name"] == "newton" and n_features > MAX_FEATURES:
            raise ConfigError(
                f"optimizer=newton: the data has {n_features} features, more than {MAX_FEATURES}, where each "
                "iteration's F x F Hessian costs more than many L-BFGS iterations; use optimizer=lbfgs"
            )
        if scheduler is not None:
            if scheduler.get("name") not in SCHEDULERS:
                raise ConfigError(
                    f"model.scheduler.name={scheduler.get('name')}: expected one of {', '.join(SCHEDULERS)}"
                )
        typed_scheduler = (
            None if scheduler is None else check_arguments(SCHEDULERS[scheduler["name"]], scheduler, "model.scheduler.")
        )
        scalars = {
            key: arguments[key] for key in ("threshold", "tune_threshold", "cost_ratio", "pos_weight", "gradient")
        }
        options = check_arguments(ModelConfig, scalars, "model.")
        for name in ("feature_mean", "feature_std"):
            values = arguments[name]
            if values is not None and (len(values) != n_features or not all(map(math.isfinite, values))):
                raise ConfigError(f"model.{name}: expected {n_features} finite numbers, or null")
        if arguments["feature_std"] is not None and min(arguments["feature_std"]) <= 0:
            raise ConfigError("model.feature_std: expected numbers > 0")
        options.optimizer, options.scheduler = typed_optimizer, typed_scheduler
        return options

    # --------------------------------------------------------------------------------------------------- the model

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

    def decision_threshold(self) -> float:
        return float(self.threshold)

    # ---------------------------------------------------------------------------------------------------- training

    def _update(
        self, with_hessian: bool = False
    ) -> tuple[Callable[[torch.Tensor, torch.Tensor], Callable[[], torch.Tensor]], Callable[[], torch.Tensor]]:
        """`closure_for(features (B, F), labels (B,))`: the closure of one optimizer step on that mini-batch. It sets
        the gradient of the batch's mean loss on the weights (averaged over processes), adds the batch's loss and
        correct predictions to this epoch's sums (once per step: L-BFGS evaluates the closure several times), and
        returns the mean loss. With `with_hessian` (Newton's method) each evaluation also computes, in the same pass,
        the (F+1, F+1) Hessian of the mean loss in the parameters (the weight, then the bias), averaged over the
        processes (one all-reduce of (F+1)^2 numbers), which the second function returned gives back.
        What holds for a whole Lightning step (the options, the process count, the weights' storage) is looked up
        here, once, not per update: at 64 rows an update is a few dozen microseconds."""
        pos_weight, threshold = float(self.options.pos_weight), float(self.threshold)
        distributed = self.trainer.world_size > 1
        identity_scaler = bool((self.feature_mean == 0).all() and (self.feature_std == 1).all())
        weight, bias = self.linear.weight, self.linear.bias  # (1, F), (1,): the parameters, for .grad
        # The parameters' storage, untracked by autograd (the optimizer updates it in place): (F,) and ()
        current_weight, current_bias = weight.detach().view(-1), bias.detach().view(())
        assert self._epoch_sums is not None, "training_step sets the epoch's sums before its updates"
        loss_sum, correct = self._epoch_sums
        first_evaluation = [True]
        mean, std, n_features = self.feature_mean, self.feature_std, len(current_weight)
        # The loss depends on theta = (w, b) through the folded phi = (w / std, b - (w / std) . mean) = J theta, so
        # the Hessian in theta is J' H_phi J, with J = [[diag(1 / std), 0], [-mean / std, 1]]  (F+1, F+1)
        jacobian = torch.eye(n_features + 1, dtype=current_weight.dtype, device=current_weight.device)
        jacobian[:n_features, :n_features] = torch.diag(1 / std)
        jacobian[n_features, :n_features] = -mean / std
        last_hessian: list[torch.Tensor] = []  # the Hessian (F+1, F+1) of the last evaluation, in theta

        def folded() -> tuple[torch.Tensor, torch.Tensor]:
            """The weight (F,) and bias () acting on the raw features."""
            if identity_scaler:
                return current_weight, current_bias
            folded_weight = current_weight / std
            return folded_weight, current_bias - torch.dot(folded_weight, mean)

        def keep_hessian(hessian: torch.Tensor) -> None:
            last_hessian[:] = [hessian if identity_scaler else jacobian.T @ hessian @ jacobian]

        def autograd(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Lab 5's way: build the graph, let autograd differentiate it."""
            if isinstance(features, StreamedRows):
                raise ConfigError("model.gradient=autograd: not on a streamed table (data.stream); use analytic")
            with torch.enable_grad():
                logits = self.logits(features)
                class_weight = None if pos_weight == 1.0 else torch.tensor(pos_weight, dtype=logits.dtype)
                loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=class_weight)
                grad_weight, grad_bias = torch.autograd.grad(loss, [weight, bias])
            correct_now = (torch.sigmoid(logits.detach()) >= threshold).eq(labels).sum()
            if with_hessian:
                keep_hessian(bce_hessian(features, labels, *folded(), pos_weight))
            return loss.detach() * len(labels), correct_now, grad_weight.view(-1), grad_bias.view(())

        def analytic(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """The closed form, on the weights acting on the raw features, then the chain rule through the scaler."""
            if isinstance(features, StreamedRows):  # a full batch read block by block: sums over the blocks
                result, streamed_hessian = features.gradient(*folded(), pos_weight, threshold, with_hessian)
                if streamed_hessian is not None:
                    keep_hessian(streamed_hessian)
            elif with_hessian:
                result, hessian = bce_gradient_and_hessian(features, labels, *folded(), pos_weight, threshold)
                keep_hessian(hessian)
            else:
                result = bce_gradient(features, labels, *folded(), pos_weight, threshold)
            if identity_scaler:
                return result
            grad_weight = (result.weight - result.bias * mean) / std  # dz/dw = (x - mean) / std
            return result.loss_sum, result.correct, grad_weight, result.bias

        gradient = autograd if self.options.gradient == "autograd" else analytic

        def update(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            batch_loss_sum, batch_correct, grad_weight, grad_bias = gradient(features, labels)
            if first_evaluation[0]:  # the metrics see the loss before the step
                loss_sum.add_(batch_loss_sum)
                correct.add_(batch_correct)
                first_evaluation[0] = False
            # a streamed full batch: the process's loss sum over its share of the split's rows (`StreamedRows`)
            loss = batch_loss_sum / (labels.share if isinstance(labels, StreamedRows) else len(labels))
            if distributed:  # the mean over processes of equal batches: the whole batch's gradient and loss
                packed = torch.cat([grad_weight, grad_bias.view(1), loss.view(1)])
                if with_hessian:
                    packed = torch.cat([packed, last_hessian[0].flatten()])
                packed = self.trainer.strategy.reduce(packed, reduce_op="mean")
                grad_weight, grad_bias, loss = packed[:n_features], packed[n_features], packed[n_features + 1]
                if with_hessian:
                    last_hessian[:] = [packed[n_features + 2 :].view(n_features + 1, n_features + 1)]
            weight.grad, bias.grad = grad_weight.view(1, -1), grad_bias.view(1)
            return loss

        def closure_for(features: torch.Tensor, labels: torch.Tensor) -> Callable[[], torch.Tensor]:
            first_evaluation[0] = True
            return lambda: update(features, labels)

        def hessian() -> torch.Tensor:
            assert last_hessian, "the closure computes the Hessian: Newton calls it first"
            return last_hessian[0]

        return closure_for, hessian

    def training_step(self, chunk: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int], index: int) -> None:
        """chunk: K mini-batches of B rows (`logreg.splits.TrainingChunks`); one optimizer step per mini-batch."""
        if self._epoch_sums is None:  # loss sum, correct predictions: tensors, added to in place by each update
            device = self.linear.weight.device
            self._epoch_sums = (
                torch.zeros((), dtype=self.linear.weight.dtype, device=device),
                torch.zeros((), dtype=torch.int64, device=device),
            )
            self._epoch_rows = 0
        # configure_optimizers returns one optimizer, so Lightning gives it alone (not a list)
        optimizer = cast(LightningOptimizer, self.optimizers())
        newton = optimizer.optimizer if isinstance(optimizer.optimizer, Newton) else None
        closure_for, hessian = self._update(with_hessian=newton is not None)
        batches = [chunk[:2]] if isinstance(chunk[0], StreamedRows) else minibatches(chunk)
        for features, labels in batches:
            if newton is None:
                optimizer.step(closure=closure_for(features, labels))
            else:
                optimizer.step(closure=closure_for(features, labels), hessian=hessian)
        if newton is not None:
            self.newton_result = dict(newton.result)
        self._epoch_rows += len(chunk[1]) if chunk[2] is None else len(chunk[2])

    def on_train_epoch_end(self) -> None:
        if self._epoch_sums is not None:
            loss_sum, correct = self._epoch_sums
            self._epoch_sums = None
            self._check_finite(loss_sum)
            totals = torch.stack([loss_sum, correct.to(loss_sum.dtype), torch.tensor(self._epoch_rows).to(loss_sum)])
            if self.trainer.world_size > 1:  # every process's rows: the epoch's loss and accuracy over all of them
                totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
            loss_sum, correct, rows = totals
            self.log("train/loss", loss_sum / rows, prog_bar=True)
            self.log("train/acc", correct / rows, prog_bar=True)
        self._step_scheduler()

    def on_train_end(self) -> None:
        result = self.newton_result
        if result is not None and not result["converged"] and self.trainer.is_global_zero:
            newton = self.optimizer_options
            assert isinstance(newton, NewtonConfig), "only Newton's method reports a result"
            max_iter = newton.max_iter
            print(
                f"newton: not converged: gradient norm {result['gradient_norm']:.1e} > tolerance_grad "
                f"{newton.tolerance_grad:.0e} after the last epoch's {result['iterations']} "
                f"iterations (max_iter={max_iter}); separated classes never converge (see the inference report), "
                "else raise model.optimizer.max_iter or epochs",
                file=sys.stderr,
            )

    def _match_metric_dtype(self) -> None:
        """The held-out stages' logits in the weights' dtype: float64 under 64-true, where torchmetrics would keep
        its states in float32 (a Metric ignores `.double()`), rounding every probability, metric and the threshold."""
        for metric in (self.val_logits, self.val_labels, self.test_logits, self.test_labels):
            metric.set_dtype(self.linear.weight.dtype)

    def on_test_start(self) -> None:
        self._match_metric_dtype()

    def on_validation_start(self) -> None:
        self._match_metric_dtype()
        if self.trainer.state.fn == "fit":  # validation inside fit may write a checkpoint: only of finite weights
            self._check_finite()

    def _check_finite(self, loss_sum: torch.Tensor | None = None) -> None:
        """Stop training when the loss or the weights stop being finite numbers, before a checkpoint can store them
        (this runs before the epoch's checkpoint is written; one device sync per epoch)."""
        values = torch.cat(
            [p.detach().flatten() for p in self.parameters()] + ([loss_sum.reshape(1)] if loss_sum is not None else [])
        )
        if bool(torch.isfinite(values).all()):
            return
        optimizer = self.optimizer_options
        raise TrainingDiverged(
            f"the loss or the weights became NaN or infinite during epoch {self.current_epoch}; the learning rate "
            f"(lr={optimizer.lr}, optimizer {optimizer.name}) is the likely cause, or features too "
            f"large for float32: try a smaller lr, e.g. lr={optimizer.lr / 10:g}, or data.standardize=true. "
            "Checkpoints of earlier epochs are kept."
        )

    def _step_scheduler(self) -> None:
        """Once per epoch, before the epoch's checkpoint is written (so a resumed run steps as an uninterrupted one)."""
        # configure_optimizers returns a scheduler exactly when the options name one, and never a list of them
        scheduler, options = cast("LRScheduler | None", self.lr_schedulers()), self.scheduler_options
        if scheduler is None or options is None:
            return
        if isinstance(options, PlateauConfig):
            monitor = options.monitor
            if monitor.startswith("val/") and self.trainer.limit_val_batches == 0:
                raise ConfigError(f"model.scheduler.monitor={monitor}: no validation in this run; use a train/ metric")
            if monitor.startswith("val/") and self._validated_epoch != self.current_epoch:
                return  # an epoch without validation (check_val_every_n_epoch): no new value to step on
            if monitor not in self.trainer.callback_metrics:  # the schema checks it: a step is never skipped
                logged = ", ".join(sorted(self.trainer.callback_metrics)) or "none"
                raise ConfigError(
                    f"model.scheduler.monitor={monitor}: this run does not log it (logged at epoch "
                    f"{self.current_epoch}: {logged}); name a logged metric"
                )
            cast(ReduceLROnPlateau, scheduler).step(self.trainer.callback_metrics[monitor])
        else:
            scheduler.step()

    def configure_optimizers(self) -> Any:
        options = dataclasses.asdict(self.optimizer_options)
        if options["name"] == "newton" and not str(self.trainer.precision).startswith("64"):
            raise ConfigError(
                "optimizer=newton: needs float64 (trainer.precision=64-true): its line search compares losses "
                "that differ in their last digits near the optimum, which float32 does not have"
            )
        optimizer = TORCH_OPTIMIZERS[options.pop("name")](self.parameters(), **options)
        scheduler = self.scheduler_options
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": torch_scheduler(optimizer, scheduler)}

    # ------------------------------------------------------------------------------------------ validation, testing

    def _evaluation_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        features, labels = batch  # (B, F), (B,)
        getattr(self, f"{stage}_logits").update(self.logits(features.to(self.linear.weight.dtype)))
        getattr(self, f"{stage}_labels").update(labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        self._evaluation_step(batch, "test")

    def _log_evaluation(self, stage: str) -> None:
        """The stage's metrics over all its rows (every process gathers them), logged once; the state is reset."""
        logit_metric, label_metric = getattr(self, f"{stage}_logits"), getattr(self, f"{stage}_labels")
        if not logit_metric.update_called:
            return
        logits, labels = logit_metric.compute().flatten(), label_metric.compute().flatten()  # (N,), (N,)
        logit_metric.reset()
        label_metric.reset()
        if stage == "val" and self.options.tune_threshold and self.trainer.state.fn == "fit":
            threshold = choose_threshold(
                torch.sigmoid(logits), labels, self.options.tune_threshold, self.options.cost_ratio
            )
            self.threshold.fill_(threshold)
            self.log("threshold", threshold)
        self._outputs[stage] = (torch.sigmoid(logits).detach().cpu(), labels.detach().cpu())
        in_bar, prefix = stage == "val", self.test_prefix if stage == "test" else stage
        for name, value in evaluation_metrics(logits, labels, self.decision_threshold()).items():
            assert name in STAGE_METRICS[stage], name  # the schema lists what a run logs: keep them in step
            self.log(f"{prefix}/{name}", value, prog_bar=in_bar and name in ("loss", "acc"))

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._validated_epoch = self.current_epoch

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def outputs(self, stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The probabilities (N,) and labels (N,) of the last validation or test epoch (on the CPU), or None."""
        return self._outputs.get(stage)
