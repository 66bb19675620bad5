"""K trials of a sweep as one LightningModule: `(K, F)` weights, `(K,)` biases, each trial's hyperparameters as
tensors, and the optimizers' updates written on `(K, F + 1)` tensors after torch's own single-tensor SGD, Adam and
AdamW, so trial k's numbers are those of config k trained alone (to float rounding: a matrix product sums in another
order than a matrix-vector product).

Each trial trains on its own rows (`logreg.together_rows.GroupRows`: a fold's, a seed's split and order): where they
are every trial's, logits `Z = X @ W.T + b` are `(B, K)`, the residuals of trial k's weighted BCE `R[:, k]`, its
gradient `R.T @ X`; in full batch over rows that differ, a `(rows, K)` 0/1 weight keeps each trial's mean to its own
rows; in mini-batches in orders that differ, each step gathers `(K, B, F)` rows, each trial's own. Each trial is
scored on its own validation and test rows, with its own scaler. A trial stops at its own epoch
count (`epochs`), or where early stopping on a validation metric stops it (`EarlyStop`, Lightning's rule): its
weights, optimizer state and threshold stop changing, and its results are its last epoch's. A trial whose weights or
loss stop being finite stops there too, and is reported as diverged. A trial with a learning-rate scheduler holds its
own torch scheduler (`logreg.together_schedules`), stepped once per epoch as its run alone steps it; its lr follows.

Under DDP each process computes the sums of its part of each update's rows (`GroupRows.share`), and one all-reduce
of `(K, F + 2)` numbers per update (each trial's gradient and loss sum) gives every process the whole batch's, so all
take the same step; correct predictions are summed once per epoch. Every process scores every held-out row (they are
in memory, and a trial's AUROC needs all its logits): the metrics, early stopping and best epochs are the same
numbers on every process, with no further communication.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.nn.functional as F

from logreg.gradient import BLOCK_ROWS
from logreg.metrics import choose_threshold, evaluation_metrics
from logreg.together_rows import Batch, GroupRows
from logreg.together_schedules import TrialSchedule

GROUPABLE_OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrialSettings:
    """What may differ between the trials of one group (everything else they share)."""

    optimizer: str  # sgd | adam | adamw
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    pos_weight: float = 1.0  # resolved: "balanced" is the training rows' ratio
    threshold: float = 0.5
    tune_threshold: str | None = None
    cost_ratio: float = 1.0
    epochs: int = 100
    check_val_every_n_epoch: int | None = 1
    scheduler: Any = None  # its typed `model.scheduler` (`logreg.together_schedules`), or None: a constant lr


@dataclass(frozen=True)
class EarlyStop:
    """Lightning's EarlyStopping on a validation metric, per trial: stop after the validation where `monitor` has not
    improved by more than `min_delta` for `patience` validations in a row (or stopped being finite)."""

    monitor: str
    mode: str  # min | max
    patience: int
    min_delta: float

    def update(self, history: TrialHistory, current: torch.Tensor, epoch: int) -> None:
        """After a validation of the trial: Lightning's rule, in the metric's own dtype as Lightning compares it. An
        improvement beyond min_delta resets the count; `patience` validations without one, or a score that is not
        finite, stop the trial (`history.stopped_at`: this epoch, its last)."""
        minimize = self.mode == "min"
        best = history.early_best
        if best is None:
            best = torch.tensor(math.inf if minimize else -math.inf)
        shifted = current - (-self.min_delta if minimize else self.min_delta)
        if not bool(torch.isfinite(current)):
            history.stopped_at = epoch
        elif bool(torch.lt(shifted, best.to(current)) if minimize else torch.gt(shifted, best.to(current))):
            history.early_best, history.early_wait = current.detach(), 0
        else:
            history.early_wait += 1
            if history.early_wait >= self.patience:
                history.stopped_at = epoch


@dataclass
class TrialHistory:
    """What one trial logged: (step, epoch, metrics) per log call while fitting, and its final metrics."""

    logs: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    last_train: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    best: tuple[float, int, int, torch.Tensor, float] | None = None  # (score, epoch, step, theta (F+1,), threshold)
    updates: int = 0  # optimizer steps taken (its checkpoint's global_step)
    last_epoch: int = -1
    diverged_at: int | None = None  # the epoch its loss or weights stopped being finite
    stopped_at: int | None = None  # the last epoch it trained, where early stopping stopped it
    early_best: torch.Tensor | None = None  # early stopping's best score so far, and the validations since
    early_wait: int = 0
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # probs, labels of a stage


class TogetherModule(L.LightningModule):
    """K logistic regressions on the same features, trained at once.

    Args:
        settings: the K trials' settings.
        initial: (K, F + 1) each trial's initial weights and bias (its own seeded `nn.Linear(F, 1)`).
        rows: the group's table and each trial's rows, and how they are served.
        feature_mean, feature_std: (K, F) each trial's scaler (of its own training rows), folded into the weights as
            `LogisticRegression` does.
        monitor, monitor_mode: the metric that picks each trial's best epoch (its best checkpoint), and min / max.
        early_stop: early stopping, applied to each trial on its own (None: none).
    """

    if TYPE_CHECKING:  # the buffers __init__ registers, for the type checker (as in logreg.model)
        theta: torch.Tensor
        feature_mean: torch.Tensor
        feature_std: torch.Tensor
        threshold: torch.Tensor
        momentum_buffer: torch.Tensor
        exp_avg: torch.Tensor
        exp_avg_sq: torch.Tensor

    def __init__(
        self,
        settings: list[TrialSettings],
        initial: torch.Tensor,
        rows: GroupRows,
        feature_mean: torch.Tensor,
        feature_std: torch.Tensor,
        monitor: str | None = None,
        monitor_mode: str = "min",
        early_stop: EarlyStop | None = None,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.settings, self.monitor, self.monitor_mode = settings, monitor, monitor_mode
        self.early_stop, self.rows = early_stop, rows
        n_trials, n_features = len(settings), initial.shape[1] - 1

        self.register_buffer("theta", initial.clone())  # (K, F + 1): weights, then the bias
        self.register_buffer("feature_mean", feature_mean.clone())  # (K, F)
        self.register_buffer("feature_std", feature_std.clone())  # (K, F)
        # (K,) as LogisticRegression's float32 `threshold` buffer holds it (and converts it with the module)
        self.register_buffer("threshold", torch.tensor([s.threshold for s in settings], dtype=torch.float32))
        # optimizer state: SGD's momentum buffer, Adam's moments
        self.register_buffer("momentum_buffer", torch.zeros_like(initial))
        self.register_buffer("exp_avg", torch.zeros_like(initial))
        self.register_buffer("exp_avg_sq", torch.zeros_like(initial))
        # (K, 1) each, and pos_weight (K,): set in on_fit_start, once the weights have their dtype and device
        self.lr = self.weight_decay = self.momentum = self.beta2 = self.eps = self.pos_weight = torch.empty(0)
        self.is_sgd = torch.tensor([s.optimizer == "sgd" for s in settings]).view(n_trials, 1)
        self.decoupled = torch.tensor([s.optimizer == "adamw" for s in settings]).view(n_trials, 1)
        self.uses_momentum = torch.tensor([s.momentum != 0 for s in settings]).view(n_trials, 1)
        self.nesterov = torch.tensor([s.nesterov for s in settings]).view(n_trials, 1)
        self.n_features = n_features
        self._scalars: dict[str, torch.Tensor] = {}  # on_fit_start: the Python-float arithmetic of torch's optimizers
        self._schedules: dict[int, TrialSchedule] = {}  # on_fit_start: trial -> its lr schedule, where it has one
        self._uses: dict[str, bool] = {}  # on_fit_start: which parts of the update any trial uses
        self._identity_scaler = True  # on_fit_start: whether every trial's scaler is the identity
        self.updates = torch.zeros(n_trials, dtype=torch.int64)  # (K,) each trial's optimizer steps so far
        self.histories = [TrialHistory() for _ in settings]
        # (K,) loss sums, correct counts and rows of the epoch so far
        self._epoch_sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._held_out: dict[str, list[tuple[torch.Tensor, torch.Tensor, list[int]]]] = {}  # on_fit_start

    # ------------------------------------------------------------------------------------------------- the model

    def trains(self, k: int, epoch: int) -> bool:
        """Whether trial k trains in `epoch`: within its own epoch count, not diverged, not stopped early before."""
        history = self.histories[k]
        stopped = history.stopped_at is not None and epoch > history.stopped_at
        return epoch < self.settings[k].epochs and history.diverged_at is None and not stopped

    def active(self, epoch: int) -> torch.Tensor:
        """(K,) whether each trial trains in `epoch` (on the CPU)."""
        return torch.tensor([self.trains(k, epoch) for k in range(len(self.settings))])

    def folded(self, theta: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights (K, F) and biases (K,) that act on features as given (the scaler folded in)."""
        theta = self.theta if theta is None else theta
        weight = theta[:, : self.n_features] / self.feature_std
        return weight, theta[:, self.n_features] - (weight * self.feature_mean).sum(1)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> logits (B, K)"""
        weight, bias = self.folded()
        return torch.addmm(bias, features.to(weight.dtype), weight.T)

    # --------------------------------------------------------------------------------------------------- training

    def _gradient(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """Loss sums (K,), correct counts (K,) and the gradient (K, F + 1) of each trial's mean loss on its rows of
        the batch (a trial with none: zeros)."""
        features, labels, weights, rows, scale = batch
        n_rows = features.shape[-2]
        if n_rows <= BLOCK_ROWS or features.dim() == 3:
            loss_sum, correct, grad_weight, grad_bias = self._block(features, labels, weights, scale)
        else:  # as logreg.gradient: sums over cache-sized blocks, divided once at the end
            parts = [
                self._block(
                    features[start : start + BLOCK_ROWS],
                    labels[start : start + BLOCK_ROWS],
                    None if weights is None else weights[start : start + BLOCK_ROWS],
                    None,
                )
                for start in range(0, n_rows, BLOCK_ROWS)
            ]
            loss_sum, correct, grad_weight, grad_bias = (torch.stack(p).sum(0) for p in zip(*parts, strict=True))
            divisor = rows.to(device=features.device, dtype=self.theta.dtype).clamp(min=1)
            grad_weight, grad_bias = grad_weight / divisor[:, None], grad_bias / divisor
        if not self._identity_scaler:  # the chain rule through the scaler
            grad_weight = (grad_weight - grad_bias[:, None] * self.feature_mean) / self.feature_std
        return loss_sum, correct, torch.cat([grad_weight, grad_bias[:, None]], dim=1)

    def _block(
        self, features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None, scale: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """features (n, F) and labels (n,) every trial's, or (K, n, F) and (K, n) each trial's own; weights (n, K)
        0/1 or None (all 1); `scale` (K,) multiplies the residuals (None: 1)."""
        weight, bias = self.folded()
        gathered = features.dim() == 3
        if gathered:  # (K, n, F) @ (K, F, 1): each trial's logits on its own rows, as (n, K)
            logits = torch.baddbmm(bias.view(-1, 1, 1), features, weight.unsqueeze(2)).squeeze(2).T
            targets = labels.T  # (n, K)
        else:
            logits = torch.addmm(bias, features, weight.T)  # (n, K)
            targets = labels[:, None]  # (n, 1)
        probs = torch.sigmoid(logits)
        residuals = (1 - targets) * probs - targets * self.pos_weight * (1 - probs)  # = probs - y where c = 1
        hits = (probs >= self.threshold) == targets.bool()
        class_weights = 1 + (self.pos_weight - 1) * targets
        if weights is None:
            label_logits = (targets * logits).sum(0) if gathered else labels @ logits  # (K,)
            loss_sum = (F.softplus(logits) * class_weights).sum(0) - self.pos_weight * label_logits
            correct = hits.sum(0)
        else:
            loss_sum = (F.softplus(logits) * class_weights * weights).sum(0) - self.pos_weight * (
                targets * weights * logits
            ).sum(0)
            correct = (hits & (weights > 0)).sum(0)
            residuals = residuals * weights
        if scale is not None:
            residuals = residuals * scale
        if gathered:
            grad_weight = torch.bmm(residuals.T.unsqueeze(1), features).squeeze(1)  # (K, F)
        else:
            grad_weight = residuals.T @ features
        return loss_sum, correct, grad_weight, residuals.sum(0)

    def _step(self, grad: torch.Tensor, active: torch.Tensor) -> None:
        """One optimizer step of every active trial (`active` (K,) on the CPU), as torch's single-tensor SGD / Adam /
        AdamW takes it: the same operations in the same order, with the scalars torch computes in Python (double)
        computed in double here. What no trial of the group uses is skipped (adding a zero decay changes nothing)."""
        theta, scalars, uses = self.theta, self._scalars, self._uses
        every = bool(active.all())
        rows = active.view(-1, 1).to(theta.device)
        first = (self.updates == 0).view(-1, 1).to(theta.device)
        self.updates += active.long()
        is_sgd = self.is_sgd
        sgd_theta = adam_theta = buffer = exp_avg = exp_avg_sq = theta
        if uses["sgd"]:
            # SGD: grad.add(param, alpha=wd); buf = grad.clone() at the first step, else buf * momentum + grad;
            # nesterov: grad + momentum * buf; param.add_(grad, alpha=-lr)
            sgd_grad = grad + self.weight_decay * theta if uses["decay"] else grad
            direction = sgd_grad
            if uses["momentum"]:
                buffer = torch.where(first, sgd_grad, self.momentum_buffer * self.momentum + sgd_grad)
                direction = torch.where(self.nesterov, sgd_grad + self.momentum * buffer, buffer)
                direction = torch.where(self.uses_momentum, direction, sgd_grad)
            sgd_theta = theta + -self.lr * direction
        if uses["adam"]:
            # Adam / AdamW: decay (coupled: into the gradient; decoupled: param.mul_(1 - lr * wd)), exp_avg.lerp_(grad,
            # 1 - beta1), exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2), bias corrections,
            # denom = sqrt(v) / sqrt(bc2) + eps, param.addcdiv_(exp_avg, denom, value=-lr / bc1)
            decayed, adam_grad = theta, grad
            if uses["decay"]:
                decayed = torch.where(self.decoupled, theta * scalars["decay_factor"], theta)
                adam_grad = torch.where(self.decoupled, grad, grad + self.weight_decay * theta)
            exp_avg = torch.lerp(self.exp_avg, adam_grad, scalars["one_minus_beta1"])
            exp_avg_sq = self.exp_avg_sq * self.beta2 + scalars["one_minus_beta2"] * adam_grad * adam_grad
            step = self.updates.double().view(-1, 1)  # each trial's own count (the inactive ones' are not used)
            step_size = (scalars["lr"] / (1 - scalars["beta1"] ** step)).to(theta)
            bias_correction2_sqrt = ((1 - scalars["beta2"] ** step) ** 0.5).to(theta)
            denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + self.eps
            adam_theta = decayed + -step_size * exp_avg / denom
        if uses["sgd"] and uses["adam"]:
            updated = torch.where(is_sgd, sgd_theta, adam_theta)
        else:
            updated = sgd_theta if uses["sgd"] else adam_theta
        # in place (the buffers stay the module's): a trial that does not step keeps its numbers
        theta.copy_(updated if every else torch.where(rows, updated, theta))
        if uses["momentum"]:
            self.momentum_buffer.copy_(torch.where(rows & is_sgd, buffer, self.momentum_buffer))
        if uses["adam"]:
            self.exp_avg.copy_(torch.where(rows & ~is_sgd, exp_avg, self.exp_avg))
            self.exp_avg_sq.copy_(torch.where(rows & ~is_sgd, exp_avg_sq, self.exp_avg_sq))

    def on_fit_start(self) -> None:
        device, dtype = self.theta.device, self.theta.dtype
        if self.trainer.world_size > 1:  # DDP: each process its part of every update's rows
            self.rows.share(self.trainer.global_rank, self.trainer.world_size)
        self.rows.to(device, dtype)
        self._held_out = {split: self.rows.held_out(split) for split in ("val", "test")}
        self._identity_scaler = bool((self.feature_mean == 0).all() and (self.feature_std == 1).all())
        self._uses = {
            "sgd": any(s.optimizer == "sgd" for s in self.settings),
            "adam": any(s.optimizer != "sgd" for s in self.settings),
            "momentum": any(s.optimizer == "sgd" and s.momentum != 0 for s in self.settings),
            "decay": any(s.weight_decay != 0 for s in self.settings),
        }
        for name in ("is_sgd", "decoupled", "uses_momentum", "nesterov"):
            setattr(self, name, getattr(self, name).to(device))

        # The hyperparameters torch's optimizers take as Python floats: made from the doubles, in the weights' dtype
        # (64-true: exact; 32-true: rounded as torch's kernels round a Python scalar)
        for name in ("weight_decay", "momentum", "eps"):
            setattr(self, name, _double([getattr(s, name) for s in self.settings]).to(device=device, dtype=dtype))
        self.beta2 = _double([s.betas[1] for s in self.settings]).to(device=device, dtype=dtype)
        self.pos_weight = _double([s.pos_weight for s in self.settings]).view(-1).to(device=device, dtype=dtype)

        beta1, beta2 = _double([s.betas[0] for s in self.settings]), _double([s.betas[1] for s in self.settings])
        self._scalars = {
            "beta1": beta1,
            "beta2": beta2,
            "one_minus_beta1": (1 - beta1).to(device=device, dtype=dtype),
            "one_minus_beta2": (1 - beta2).to(device=device, dtype=dtype),
        }
        self._schedules = {k: TrialSchedule(s.lr, s.scheduler) for k, s in enumerate(self.settings) if s.scheduler}
        self._set_lrs([s.lr for s in self.settings])

    def _set_lrs(self, lrs: list[float]) -> None:
        """Each trial's lr from now on (K Python floats, as its torch optimizer's `lr`): the SGD step's (K, 1) lr, and
        what Adam and AdamW compute from it in double (the step size's lr, AdamW's decay factor `1 - lr * wd`)."""
        lr, device, dtype = _double(lrs), self.theta.device, self.theta.dtype
        self.lr = lr.to(device=device, dtype=dtype)
        self._scalars["lr"] = lr
        decay = _double([s.weight_decay for s in self.settings])
        self._scalars["decay_factor"] = (1 - lr * decay).to(device=device, dtype=dtype)

    def _step_schedules(self, epoch: int) -> None:
        """After `epoch`: the schedule of each trial that trained it steps, on what the trial logged in it, as
        `LogisticRegression` steps its scheduler at the end of each epoch (after the epoch's validation)."""
        if not self._schedules:
            return
        for k, schedule in self._schedules.items():
            history = self.histories[k]
            if self.trains(k, epoch) and history.last_epoch == epoch:
                logged: dict[str, float] = {}
                for _, logged_epoch, values in reversed(history.logs):
                    if logged_epoch != epoch:
                        break
                    logged |= values
                schedule.step(logged)
        self._set_lrs([self._schedules[k].lr if k in self._schedules else s.lr for k, s in enumerate(self.settings)])

    def train_dataloader(self) -> range:
        return range(self.rows.steps)  # the step's number: `rows` serves each trial's mini-batches of that step

    def val_dataloader(self) -> list[int]:
        return [0] if any(len(trial.val) for trial in self.rows.trials) else []  # one step: all validation rows

    def on_train_epoch_start(self) -> None:
        self.rows.start_epoch(self.current_epoch)

    def training_step(self, step: int, index: int) -> None:
        if self._epoch_sums is None:
            n_trials, device = len(self.settings), self.theta.device
            self._epoch_sums = (
                torch.zeros(n_trials, dtype=self.theta.dtype, device=device),
                torch.zeros(n_trials, dtype=torch.int64, device=device),
                torch.zeros(n_trials, dtype=torch.int64),
            )
        loss_sum, correct, epoch_rows = self._epoch_sums
        active = self.active(self.current_epoch)
        for batch in self.rows.minibatches(int(step)):
            batch_loss, batch_correct, grad = self._gradient(batch)
            if self.rows.world_size > 1:  # this process's part of the batch: the sums of all processes are the batch's
                packed = self.trainer.strategy.reduce(torch.cat([grad, batch_loss[:, None]], dim=1), reduce_op="sum")
                grad, batch_loss = packed[:, :-1], packed[:, -1]  # (K, F + 1), (K,)
            loss_sum.add_(batch_loss)
            correct.add_(batch_correct)
            epoch_rows.add_(batch.rows)
            self._step(grad, active & (batch.rows > 0))

    def on_train_epoch_end(self) -> None:
        if self._epoch_sums is None:
            return
        epoch = self.current_epoch
        loss_sum, correct, epoch_rows = self._epoch_sums  # epoch_rows: the whole batches' (every process's)
        self._epoch_sums = None
        if self.rows.world_size > 1:
            correct = self.trainer.strategy.reduce(correct, reduce_op="sum")
        rows = epoch_rows.to(loss_sum)
        losses, accuracies = loss_sum / rows, correct.to(loss_sum.dtype) / rows
        finite = torch.isfinite(self.theta).all(1) & torch.isfinite(loss_sum)
        for k, history in enumerate(self.histories):
            if not self.trains(k, epoch):
                continue
            if not bool(finite[k]):
                history.diverged_at = epoch
                continue
            history.last_train = {"train/loss": losses[k].item(), "train/acc": accuracies[k].item()}
            history.updates, history.last_epoch = int(self.updates[k]), epoch
            history.logs.append((self.log_step(k), epoch, dict(history.last_train)))
        self._step_schedules(epoch)

    def log_step(self, k: int, epoch: int | None = None) -> int:
        """The step trial k's own run logs an epoch's metrics at (training and validation): its last Lightning step
        of that epoch (its own loader's steps)."""
        epoch = self.current_epoch if epoch is None else epoch
        return (epoch + 1) * self.rows.steps_of(k) - 1

    def validation_step(self, batch: int, index: int) -> None:
        pass  # every trial is scored on its own rows at the epoch's end

    def on_validation_epoch_end(self) -> None:
        weight, bias = self.folded()
        epoch = self.current_epoch
        for features, labels, members in self._held_out.get("val", []):
            for k in members:
                self._validate(k, epoch, features, labels, weight, bias)

    def _validate(
        self, k: int, epoch: int, features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> None:
        settings, history = self.settings[k], self.histories[k]
        every = settings.check_val_every_n_epoch
        due = every is not None and (epoch + 1) % every == 0
        if not due or not self.trains(k, epoch):
            return
        if not bool(torch.isfinite(self.theta[k]).all()):
            history.diverged_at = epoch
            return
        trial_logits = self._held_out_logits(features, weight[k : k + 1], bias[k : k + 1])
        logged: dict[str, float] = {}
        if settings.tune_threshold:
            chosen = choose_threshold(torch.sigmoid(trial_logits), labels, settings.tune_threshold, settings.cost_ratio)
            self.threshold[k] = chosen
            logged["threshold"] = float(torch.tensor(chosen, dtype=torch.float32))  # as Lightning logs a float
        metrics = evaluation_metrics(trial_logits, labels, float(self.threshold[k]))
        logged |= {f"val/{name}": value.item() for name, value in metrics.items()}
        history.last_val = logged
        history.logs.append((self.log_step(k), epoch, logged))
        history.outputs["val"] = (torch.sigmoid(trial_logits).detach().cpu(), labels.detach().cpu())
        if self.monitor in logged:
            self._keep_if_best(history, logged[self.monitor], epoch, k)
        if self.early_stop is not None:
            self.early_stop.update(history, metrics[self.early_stop.monitor.removeprefix("val/")], epoch)

    @staticmethod
    def _held_out_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(N,) one trial's logits on held-out rows, as LogisticRegression's evaluation keeps them: in the weights'
        dtype (float64 under 64-true)."""
        return F.linear(features.to(weight.dtype), weight, bias).squeeze(-1)

    def _keep_if_best(self, history: TrialHistory, score: float, epoch: int, k: int) -> None:
        """ModelCheckpoint's rule (save_top_k=1): a strictly better score replaces the best."""
        if history.best is not None:
            best = history.best[0]
            better = score < best if self.monitor_mode == "min" else score > best
            if not better:
                return
        history.best = (score, epoch, int(self.updates[k]), self.theta[k].detach().clone(), float(self.threshold[k]))

    def configure_optimizers(self) -> Any:
        return None  # the module takes its own steps (_step)

    # ------------------------------------------------------------------------------------------------ the results

    def trial_state(self, k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Trial k's weight (1, F), bias (1,) (before the scaler, as `LogisticRegression.linear` holds them) and its
        decision threshold."""
        theta = self.theta[k].detach()
        return theta[: self.n_features].view(1, -1), theta[self.n_features :].clone(), float(self.threshold[k])

    def tested(self, k: int) -> bool:
        """Whether trial k has test rows (`test_on`'s) to score."""
        return any(k in members for _, _, members in self._held_out.get("test", []))

    def test_metrics(self, k: int, prefix: str = "test") -> dict[str, float]:
        """Trial k's metrics on its test rows, as its own `trainer.test` logs them."""
        features, labels = next((f, y) for f, y, members in self._held_out["test"] if k in members)
        weight, bias = self.folded()
        logits = self._held_out_logits(features, weight[k : k + 1], bias[k : k + 1])
        labels = labels.to(logits.dtype)
        self.histories[k].outputs["test"] = (torch.sigmoid(logits).detach().cpu(), labels.detach().cpu())
        metrics = evaluation_metrics(logits, labels, float(self.threshold[k]))
        return {f"{prefix}/{name}": value.item() for name, value in metrics.items()}


def _double(values: list[float]) -> torch.Tensor:
    """(K, 1) float64 on the CPU: Python's arithmetic on per-trial floats."""
    return torch.tensor(values, dtype=torch.float64).view(-1, 1)


def stack_initial(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    """(K, F + 1) from each trial's (1, F) weight and (1,) bias."""
    return torch.stack([torch.cat([w.detach().view(-1), b.detach().view(-1)]) for w, b in zip(weights, biases)])
