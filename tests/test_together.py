"""Trials trained together (hydra/launcher=together): each trial's numbers and files equal its configuration trained
alone; the configs equal Hydra's compose; what cannot train together trains alone, and says why."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import scalars

# Each trial of one group: every setting a group lets differ, mixed (and one shared pinned data.seed, so the seeds
# change only the initial weights).
MIXED_GRID = [
    ["lr=0.5"],
    ["lr=0.2", "model.optimizer.momentum=0.9", "model.optimizer.nesterov=true", "seed=2"],
    ["lr=0.3", "model.optimizer.momentum=0.5", "model.optimizer.weight_decay=0.01", "epochs=3"],
    ["optimizer=adam", "lr=0.05", "model.optimizer.betas=[0.8,0.99]", "model.optimizer.eps=1e-6", "seed=3"],
    ["optimizer=adamw", "lr=0.02", "model.optimizer.weight_decay=0.1", "model.pos_weight=balanced"],
    ["optimizer=adam", "lr=0.01", "model.pos_weight=2", "model.threshold=0.3", "model.optimizer.weight_decay=0.01"],
    ["lr=1", "model.tune_threshold=f1", "epochs=4"],
    ["optimizer=adamw", "lr=0.1", "model.tune_threshold=youden", "trainer.check_val_every_n_epoch=2"],
]


def shared(tiny_csv, precision, batch_size):
    return [
        "data=csv",
        f"data.path={tiny_csv}",
        "data.seed=1",
        f"data.batch_size={batch_size}",
        "data.batches_per_step=2",
        f"trainer.precision={precision}",
        "epochs=5",
        "callbacks.last_checkpoint.every_seconds=0",
    ]


def allowed(value: float, tolerance: float) -> float:
    """The tolerance for a metric: `tolerance`, or for a number that is a float32 (torchmetrics computes the Brier
    score and the calibration error in float32, whatever the model's precision) two of float32's rounding steps."""
    is_float32 = float(np.float32(value)) == value
    return max(tolerance, 2**-22 * abs(value)) if is_float32 else tolerance


def weights(checkpoint_path: Path) -> torch.Tensor:
    state = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    return torch.cat([state["linear.weight"].flatten(), state["linear.bias"].flatten(), state["threshold"].view(1)])


def coefficients(folder: Path) -> list[list[float]]:
    rows = (folder / "coefficients.csv").read_text().splitlines()[1:]
    return [[float(cell) for cell in row.split(",")[1:] if cell] for row in rows]


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "batch_size", "tolerance"), [("32-true", "null", 1e-6), ("64-true", 16, 1e-10)])
def test_every_trial_trained_together_equals_its_configuration_trained_alone(
    compose, run, tiny_csv, tmp_path, precision, batch_size, tolerance
):
    from logreg.schema import check_config
    from logreg.together_runs import group_key, train_group, write_trial

    grid = [[*shared(tiny_csv, precision, batch_size), *trial] for trial in MIXED_GRID]
    configs = []
    for n, overrides in enumerate(grid):
        cfg = compose(*overrides, run_dir=tmp_path / f"together_{n}")
        check_config(cfg)
        configs.append(cfg)
    assert len({group_key(cfg) for cfg in configs}) == 1 and group_key(configs[0])[0] is not None  # one group

    trained = train_group(configs)
    for n, overrides in enumerate(grid):
        together, alone = tmp_path / f"together_{n}", tmp_path / f"alone_{n}"
        write_trial(compose(*overrides, run_dir=together), trained[n])
        run(*overrides, run_dir=alone)

        mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (together, alone))
        assert sorted(mine) == sorted(theirs), overrides
        differing = {
            n: (mine[n], theirs[n]) for n in theirs if abs(mine[n] - theirs[n]) > allowed(theirs[n], tolerance)
        }
        assert not differing, overrides
        close = {"atol": tolerance, "rtol": tolerance, "equal_nan": True}  # odds ratios: exp(coefficient)
        torch.testing.assert_close(torch.tensor(coefficients(together)), torch.tensor(coefficients(alone)), **close)
        for name in ("last.ckpt", *(p.name for p in (alone / "checkpoints").glob("best-*.ckpt"))):
            difference = weights(together / "checkpoints" / name) - weights(alone / "checkpoints" / name)
            assert difference.abs().max() <= tolerance, (overrides, name)
        mine_curves, their_curves = scalars(together), scalars(alone)
        assert sorted(mine_curves) == sorted(their_curves), overrides
        for tag, values in their_curves.items():
            assert len(mine_curves[tag]) == len(values), tag
            assert all(abs(a - b) <= allowed(b, tolerance) for a, b in zip(mine_curves[tag], values)), tag
