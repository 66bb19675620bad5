"""Newton's method (IRLS) for logistic regression's mean binary cross-entropy, as a torch optimizer.

The loss is convex and smooth; Newton's step d = -H^-1 g, with H the (P, P) Hessian X~' W X~ / N of the P = F + 1
parameters, reaches its minimum in a handful of iterations (quadratically, once close), where first-order methods
need hundreds. A backtracking line search (Armijo) makes every iteration lower the loss, so it converges from any
start. The Hessian comes from the caller (`step(closure, hessian=...)`): the model computes it in closed form
(`logreg.gradient.bce_hessian`) and, under DDP, averages it over the processes as it does the gradient, so every
process takes the same step. All of it in float64: the model refuses Newton under float32 (see MAX_FEATURES and
`logreg.schema.TrainConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

# Above this many features the F x F Hessian (F^2 N multiply-adds per iteration, F^2 x 8 bytes) and its solve (F^3 / 3)
# cost more than the hundreds of O(N F) iterations of L-BFGS: at F = 2000 one Hessian of 100k rows is 4e11 operations
# and 32 MB. optimizer=newton is refused there in favour of optimizer=lbfgs.
MAX_FEATURES = 2000
ARMIJO = 1e-4  # the share of the predicted decrease a step must achieve
MAX_HALVINGS = 50  # 2^-50: a step that small changes nothing in float64


class Newton(torch.optim.Optimizer):
    """Newton's method with a backtracking line search, on every parameter of the module as one vector.

    Args:
        params: the parameters (for the model: its weight (1, F) and bias (1,)).
        lr: the first step length tried (1 is Newton's own step).
        max_iter: Newton iterations per `step` (per epoch of full-batch training).
        tolerance_grad: stop once max |gradient| is at most this.

    After each `step`, `self.result` holds `converged` (bool), `iterations` and `gradient_norm` (float).
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float = 1.0, max_iter: int = 100, tolerance_grad: float = 1e-8
    ):
        super().__init__(params, {"lr": lr, "max_iter": max_iter, "tolerance_grad": tolerance_grad})
        self.result: dict[str, Any] = {"converged": False, "iterations": 0, "gradient_norm": float("nan")}

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat([p.grad.reshape(-1) for p in self._params()])  # type: ignore[union-attr]

    def _set(self, values: torch.Tensor) -> None:
        start = 0
        for p in self._params():
            p.copy_(values[start : start + p.numel()].view_as(p))
            start += p.numel()

    @torch.no_grad()
    def step(  # type: ignore[override]
        self, closure: Callable[[], torch.Tensor], hessian: Callable[[], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Up to max_iter Newton iterations. `closure()` sets the gradient of the loss on the parameters and returns the
        loss; `hessian()` returns the (P, P) Hessian at the parameters of the last `closure()` call, in their order."""
        if hessian is None:
            raise ValueError("Newton.step needs hessian=: a function returning the (P, P) Hessian")
        group = self.param_groups[0]
        with torch.enable_grad():
            loss = closure()
        gradient = self._flat_grad()  # (P,)
        gradient_norm = float(gradient.abs().max())
        iterations = 0
        while gradient_norm > group["tolerance_grad"] and iterations < group["max_iter"]:
            iterations += 1
            direction = solve(hessian(), -gradient)  # (P,)
            slope = float(torch.dot(gradient, direction))
            if not slope < 0:  # not a descent direction (a Hessian singular to float64): steepest descent instead
                direction, slope = -gradient, -float(torch.dot(gradient, gradient))
            start = torch.cat([p.detach().reshape(-1) for p in self._params()])  # (P,)
            step_length = group["lr"]
            for _ in range(MAX_HALVINGS):
                self._set(start + step_length * direction)
                with torch.enable_grad():
                    trial_loss = closure()
                trial_gradient = self._flat_grad()
                trial_norm = float(trial_gradient.abs().max())
                decrease = float(trial_loss) - float(loss)
                # Armijo's sufficient decrease; or, where the loss no longer changes in float64's last digits (at the
                # optimum), a step that still shrinks the gradient
                if decrease <= ARMIJO * step_length * slope or (
                    decrease <= 1e-15 * max(1.0, abs(float(loss))) and trial_norm < gradient_norm
                ):
                    break
                step_length /= 2
            else:  # no step lowers the loss: as close as float64 gets
                self._set(start)
                with torch.enable_grad():
                    closure()
                break
            loss, gradient, gradient_norm = trial_loss, trial_gradient, trial_norm
        self.result = {
            "converged": gradient_norm <= group["tolerance_grad"],
            "iterations": iterations,
            "gradient_norm": gradient_norm,
        }
        return loss


SINGULAR = 1e-10  # eigenvalues of the unit-diagonal Hessian below this share of the largest count as zero


def solve(hessian: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """H^-1 r for a symmetric positive semi-definite (P, P) H, scaled to a unit diagonal first (so features in large
    units do not matter). Where H is singular or nearly so (collinear features, separated classes), the step leaves
    the directions of its eigenvalues below SINGULAR alone (the pseudo-inverse): a step along them would fit float
    rounding with huge coefficients."""
    scale = hessian.diagonal().clamp(min=torch.finfo(hessian.dtype).tiny).sqrt()  # (P,)
    eigenvalues, vectors = torch.linalg.eigh(hessian / torch.outer(scale, scale))  # ascending, (P,), (P, P)
    kept = eigenvalues > SINGULAR * eigenvalues[-1].clamp(min=0)
    inverse = torch.where(
        kept, 1 / eigenvalues.where(kept, torch.ones_like(eigenvalues)), torch.zeros_like(eigenvalues)
    )
    return vectors @ (inverse * (vectors.T @ (right / scale))) / scale
