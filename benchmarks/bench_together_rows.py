"""Trials with rows of their own trained together (logreg.together_rows) against the same configurations trained one
after another by train.py's own path (`fit_and_test`), in one process, CPU time (`time.process_time`: on a shared
machine it changes least), interleaved rounds, medians.

    python benchmarks/bench_together_rows.py [--rows 200000] [--epochs 2] [--trials 5 20] [--rounds 2]

A synthetic N x 8 table, batch 64 (mini-batches, reshuffled each epoch), SGD, lr varied per trial. Three ways to
differ, each trained as one group:
- `orders`: each trial its own seed: its own split and its own order every epoch (a (K, B, F) gather per step);
- `folds`: cv.folds=K's K folds (their own training rows and orders);
- `shared`: one pinned data.seed, so every trial the same rows in the same order (one (B, F) batch for all).
The sequential side trains `--alone` of the configurations (each through its own Trainer, as `hydra/launcher=basic`
or cv.together=false would) and scales to K. No logger, no callbacks on either side. Prints each ratio
(together / K sequential); below 1 it pays.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def compose(overrides: list[str], run_dir: Path):  # noqa: ANN201 - a TrainConfig
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from logreg.checking import check_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return check_config(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trials", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alone", type=int, default=2, help="configurations trained alone per round (scaled to K)")
    args = parser.parse_args()

    import logging

    import torch

    from logreg.together_runs import train_group
    from logreg.training import fit_and_test, fold_changes

    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        rng = np.random.default_rng(0)
        features = rng.normal(size=(args.rows, 8)).astype(np.float32)
        labels = (features @ np.linspace(1, -1, 8) + rng.normal(size=args.rows) > 0).astype(np.float32)
        csv = scratch / "table.csv"
        np.savetxt(csv, np.column_stack([features, labels]), delimiter=",", fmt="%.5g")
        common = [
            "data=csv",
            f"data.path={csv}",
            "data.batch_size=64",
            f"epochs={args.epochs}",
            "logger=none",
            "callbacks=none",
            "trainer.enable_progress_bar=false",
            "threads=1",
        ]

        def configs(kind: str, k: int) -> tuple[list, list[dict] | None]:
            lr = [f"lr={0.01 * (1 + i)}" for i in range(k)]
            if kind == "orders":
                return [compose([*common, lr[i], f"seed={i + 1}"], scratch / "run") for i in range(k)], None
            if kind == "shared":
                return [
                    compose([*common, lr[i], "data.seed=1", f"seed={i + 1}"], scratch / "run") for i in range(k)
                ], None
            cfg = compose([*common, f"cv.folds={k}"], scratch / "run")
            return [cfg] * k, fold_changes(k)

        ratios: dict[tuple[str, int], list[float]] = {}
        for round_ in range(args.rounds):
            for k in args.trials:
                for kind in ("orders", "folds", "shared"):
                    group, changes = configs(kind, k)
                    start = time.process_time()
                    train_group(group, changes)
                    together = time.process_time() - start
                    start = time.process_time()
                    for i in range(args.alone):
                        folder = scratch / f"alone-{round_}-{k}-{kind}-{i}"
                        fit_and_test(group[i], folder, show=False, **(changes[i] if changes else {}))
                    alone = (time.process_time() - start) / args.alone * k
                    ratios.setdefault((kind, k), []).append(together / alone)
                    print(
                        f"round {round_} K={k} {kind}: together {together:.2f} s, K alone {alone:.2f} s CPU", flush=True
                    )
        print(f"\n{args.rows:,} x 8, batch 64, {args.epochs} epochs; together / K sequential (CPU, median of rounds)")
        for (kind, k), values in sorted(ratios.items()):
            print(f"  {kind:7s} K={k:3d}: {median(values):.3f}")


if __name__ == "__main__":
    main()
