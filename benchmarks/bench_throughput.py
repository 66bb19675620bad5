"""Training speed of the project against a plain PyTorch loop over the same tensors, and against memory bandwidth.

    python benchmarks/bench_throughput.py                 # CPU; --device cuda on a GPU machine
    python benchmarks/bench_throughput.py --quick         # smaller data and fewer steps: a smoke run (CI)

For each synthetic table (1,000,000 x 8 and 100,000 x 100, float32) it measures, in this one process:

- full batch (one step per epoch, lab 5's setting): the epoch time of the project (Lightning Trainer built from
  conf/trainer, the TensorBoard logger, our LogisticRegression and TabularDataModule) and of a plain loop, the
  project's per-epoch overhead, and both against the memory-bandwidth bound: bytes of X / measured copy bandwidth
  (the time to read X once; a forward and a backward pass read it at least twice);
- mini-batches of 64, 1024 and 16384 rows (--batch-sizes), shuffled each epoch: samples/s of both, their ratio;
- where a step's time goes (1,000,000 x 8, batch 64): the plain loop, Lightning's loop around a bare module (no
  metrics, no logger, no progress bar), then the project's model, then the project's logger and progress bar.

The project runs without checkpoint callbacks (a checkpoint per epoch is a config choice, timed on its own line).
Times are medians (full batch) or window means over many steps (mini-batch) after a warm-up; ratios compare
numbers measured in this run only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device: torch.device, n_bytes: int = 256 << 20, repeats: int = 20) -> float:
    """Bytes per second that `dst.copy_(src)` moves for a buffer far larger than the caches (reads src, writes dst):
    the best of `repeats` copies, so a busy moment of a shared machine does not lower the bound."""
    src = torch.ones(n_bytes // 4, device=device)
    dst = torch.zeros_like(src)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return n_bytes / best


def synthetic_table(n_rows: int, n_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """features (n_rows, n_features) float32 and labels (n_rows,) float32 in {0, 1} from a noisy linear rule."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    weight = rng.standard_normal(n_features).astype(np.float32)
    labels = (features @ weight + rng.standard_normal(n_rows, dtype=np.float32) > 0).astype(np.float32)
    return features, labels


# ------------------------------------------------------------------------------------------------ plain PyTorch


def plain_step_times(features, labels, batch_size, n_steps, epochs, lr=0.1) -> np.ndarray:
    """Seconds per step of a textbook loop over the same tensors: nn.Linear, BCE on logits, SGD, reshuffled each
    epoch like the project's sampler. At full batch (batch_size None) a step is an epoch."""
    device = features.device
    n_rows, n_features = features.shape
    model = torch.nn.Linear(n_features, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    marks = []
    for epoch in range(epochs):
        if batch_size is None:
            batches = [(features, labels)]
        else:
            order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(epoch)).to(device)
            starts = range(0, n_steps * batch_size, batch_size)
            batches = ((features[order[s : s + batch_size]], labels[order[s : s + batch_size]]) for s in starts)
        for x, y in batches:
            sync(device)
            marks.append(time.perf_counter())
            loss = F.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    sync(device)
    marks.append(time.perf_counter())
    return np.diff(marks)


# ------------------------------------------------------------------------------------------------------ project


def bare_module(n_features: int, lr: float):
    """The least a LightningModule can be for this model: nn.Linear, BCE on logits, SGD; no metrics, no logging."""
    import lightning as L

    class BareLogistic(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(n_features, 1)

        def training_step(self, batch, batch_idx):
            features, labels = batch
            return F.binary_cross_entropy_with_logits(self.linear(features).squeeze(-1), labels)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr)

    return BareLogistic()


def project_step_times(
    features, labels, batch_size, n_steps, epochs, device_kind, root, checkpoints=False, bare_model=False, quiet=False
):
    """Seconds per step (at full batch: per epoch) of the project's Trainer, model and DataModule, each step timed
    from its start to the next one's, so per-epoch work lands in the epoch's last step.
    For the breakdown: `bare_model` puts a bare module in place of LogisticRegression; `quiet` drops the logger and
    the progress bar."""
    lr = 0.1
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from logreg.data import TabularDataModule
    from logreg.model import LogisticRegression

    class SyntheticTable(TabularDataModule):
        def read(self):
            return features, labels, [f"x{i}" for i in range(features.shape[1])]

    class Clock(L.Callback):
        """perf_counter at the start of every step; one step per epoch at full batch."""

        def __init__(self):
            self.marks = []

        def on_train_batch_start(self, trainer, *args):
            sync(trainer.strategy.root_device)
            self.marks.append(time.perf_counter())

        def on_train_end(self, trainer, *args):
            sync(trainer.strategy.root_device)
            self.marks.append(time.perf_counter())

    overrides = [
        f"trainer={'gpu' if device_kind == 'cuda' else 'cpu'}",
        f"epochs={epochs}",
        f"trainer.default_root_dir={root}",
        f"logger.save_dir={root}",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    clock = Clock()
    callbacks = [clock]
    if checkpoints:
        checkpoint = cfg.callbacks.checkpoint  # conf/callbacks/default.yaml, monitoring the training loss as lab05 does
        callbacks.append(instantiate(checkpoint, dirpath=f"{root}/checkpoints", monitor="train/loss"))
    trainer = instantiate(
        cfg.trainer,
        logger=False if quiet else instantiate(cfg.logger),
        callbacks=callbacks,
        limit_train_batches=n_steps if batch_size else None,
        enable_checkpointing=checkpoints,
        enable_model_summary=False,
        enable_progress_bar=not quiet,
    )
    datamodule = SyntheticTable(val_fraction=0.0, test_fraction=0.0, batch_size=batch_size, shuffle=True)
    n_features = features.shape[1]
    model = bare_module(n_features, lr) if bare_model else LogisticRegression(n_features, {"name": "sgd", "lr": lr})
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # the progress bar runs, unseen
        trainer.fit(model, datamodule=datamodule)
    return np.diff(clock.marks)


# --------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="1/10 of the rows and few steps: a smoke run")
    parser.add_argument("--steps", type=int, default=2000, help="mini-batch steps timed per configuration")
    parser.add_argument("--epochs", type=int, default=30, help="full-batch epochs timed per configuration")
    parser.add_argument("--batch-sizes", default="64,1024,16384", help="mini-batch sizes, comma-separated")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    device = torch.device(args.device)
    shrink = 10 if args.quick else 1
    steps, epochs = (200, 8) if args.quick else (args.steps, args.epochs)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    bandwidth = copy_bandwidth(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s (bytes copied per second, best of 20 copies of 256 MiB)\n")
    summary = []
    for n_rows, n_features in ((1_000_000 // shrink, 8), (100_000 // shrink, 100)):
        x_np, y_np = synthetic_table(n_rows, n_features)
        features, labels = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        shape = f"{n_rows:,} x {n_features}"
        bound = features.nbytes / bandwidth

        with tempfile.TemporaryDirectory() as root:
            plain = np.median(plain_step_times(features, labels, None, 1, epochs)[2:])
            project = np.median(project_step_times(x_np, y_np, None, 1, epochs, device.type, root)[2:])
            with_ckpt = np.median(project_step_times(x_np, y_np, None, 1, epochs, device.type, root, True)[2:])
        print(f"{shape}, full batch ({features.nbytes / 1e6:.0f} MB of X): time per epoch")
        print(f"  bandwidth bound (read X once) {bound * 1e3:8.2f} ms")
        print(f"  plain PyTorch                 {plain * 1e3:8.2f} ms   {plain / bound:5.2f}x the bound")
        print(
            f"  project                       {project * 1e3:8.2f} ms   {project / bound:5.2f}x the bound, "
            f"{project / plain:4.2f}x plain: overhead {(project - plain) * 1e3:+.2f} ms per epoch"
        )
        print(f"  project + checkpoint callback {with_ckpt * 1e3:8.2f} ms   ({(with_ckpt - project) * 1e3:+.2f} ms)")
        summary.append((shape, "full", plain / project, project / bound))

        for batch_size in (b for b in batch_sizes if b <= n_rows):
            steps_per_epoch = min(steps, n_rows // batch_size)
            n_epochs = -(-steps // steps_per_epoch)  # enough epochs for `steps` steps
            warm = min(steps_per_epoch // 10 + 2, steps_per_epoch * n_epochs // 4)
            with tempfile.TemporaryDirectory() as root:
                plain = plain_step_times(features, labels, batch_size, steps_per_epoch, n_epochs)[warm:].mean()
                project = project_step_times(x_np, y_np, batch_size, steps_per_epoch, n_epochs, device.type, root)
                project = project[warm:].mean()
            print(
                f"{shape}, batch {batch_size:>6}: samples/s plain {batch_size / plain:13,.0f}, project "
                f"{batch_size / project:13,.0f}, ratio {plain / project:4.2f}   "
                f"(per step: plain {plain * 1e6:7.0f} us, project {project * 1e6:7.0f} us, "
                f"overhead {(project - plain) * 1e6:+5.0f} us)"
            )
            summary.append((shape, batch_size, plain / project, None))
            if (n_rows, n_features, batch_size) == (1_000_000 // shrink, 8, 64):
                run = (x_np, y_np, 64, steps_per_epoch, n_epochs, device.type)
                with tempfile.TemporaryDirectory() as root:
                    bare = project_step_times(*run, root, bare_model=True, quiet=True)[warm:].mean()
                    quiet = project_step_times(*run, root, quiet=True)[warm:].mean()
                breakdown = [
                    ("plain PyTorch loop", plain),
                    ("Lightning's loop around a bare module", bare),
                    ("  + the project's model (torchmetrics loss and accuracy)", quiet),
                    ("  + the TensorBoard logger and progress bar: the project", project),
                ]
        print()

    print(f"where a step's time goes ({1_000_000 // shrink:,} x 8, batch 64):")
    for what, seconds in breakdown:
        print(f"  {what:58s} {seconds * 1e6:6.0f} us per step")
    print()
    print("summary: project / plain samples/s (target >= 0.8); full-batch epoch / bandwidth bound (target <= 2)")
    for shape, batch, ratio, to_bound in summary:
        extra = f"   epoch / bound {to_bound:5.2f}" if to_bound is not None else ""
        print(f"  {shape:>15}  batch {batch:>6}   project / plain {ratio:4.2f}{extra}")


if __name__ == "__main__":
    main()
