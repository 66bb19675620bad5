"""Each trial's learning-rate schedule in a group (`logreg.together.TogetherModule`).

A trial holds a real torch scheduler (the one `logreg.model.torch_scheduler` builds for its run alone), stepping a
torch optimizer that holds only the trial's lr (and one placeholder parameter it never changes). It steps when
`LogisticRegression` steps its own: once per epoch, after the epoch's validation; ReduceLROnPlateau on the trial's
own value of its monitor, and only in an epoch that logged that value (a `val/` metric is not logged in an epoch
without validation). The lr the scheduler leaves is the one the trial trains its next epoch with: the same Python
floats, computed by the same code, as in its run alone.
"""

from __future__ import annotations

import torch

from logreg.errors import ConfigError
from logreg.model import torch_scheduler
from logreg.schema import PlateauConfig, SchedulerConfig


class TrialSchedule:
    """One trial's scheduler. `lr`: the lr it starts with; `scheduler`: its typed `model.scheduler`."""

    def __init__(self, lr: float, scheduler: SchedulerConfig):
        self._optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        self._scheduler = torch_scheduler(self._optimizer, scheduler)
        self._optimizer.step()  # no gradient, so no change: torch's schedulers warn when stepped before the optimizer
        self.monitor = scheduler.monitor if isinstance(scheduler, PlateauConfig) else None

    @property
    def lr(self) -> float:
        """The lr the trial trains with now."""
        return float(self._optimizer.param_groups[0]["lr"])

    def step(self, logged: dict[str, float]) -> None:
        """At the end of an epoch the trial trained, with what it logged in that epoch (`train/*`, and `val/*` when
        it was validated)."""
        if self.monitor is None:
            self._scheduler.step()
        elif self.monitor in logged:
            self._scheduler.step(logged[self.monitor])  # type: ignore[arg-type]
        elif not self.monitor.startswith("val/"):  # the schema allows only logged metrics: a step is never skipped
            raise ConfigError(f"model.scheduler.monitor={self.monitor}: this run does not log it; name a logged metric")
