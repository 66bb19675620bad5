"""Training speed of the project, as configured, against a plain PyTorch loop over the same tensors, and against the
memory-bandwidth bound.

    python benchmarks/bench_throughput.py                 # CPU; --device cuda on a GPU machine
    python benchmarks/bench_throughput.py --quick         # 1/10 of the rows: a smoke run
    python benchmarks/bench_throughput.py --threads 1     # torch's CPU threads, for both sides alike

For each synthetic float32 table (1,000,000 x 8 and 100,000 x 100) it measures, in this one process:

- mini-batches of 64 and 1024 rows, shuffled each epoch: rows per second of the project and of the plain loop, and
  their ratio (above 1: the project is faster). The project is `train.py`'s default configuration (conf/train.yaml:
  TensorBoard logger, progress bar, checkpoint callbacks, plots callback, the model's metrics, the closed-form
  gradient), built by the same functions train.py uses; a synthetic DataModule holds the table, all of it training
  rows. The plain loop is lab 5's code at its fastest: nn.Linear, BCE on logits, autograd, SGD, the same shuffling.
  A project epoch is measured whole, per-epoch work included: (time of 3 epochs - time of 1) / 2.
- a full-batch epoch on the first table: the project's and the plain loop's, each against the bound: the bytes of
  the features read once at the measured copy bandwidth.

Each measurement is taken in `--rounds` interleaved rounds (plain, project, plain, project, ...), each round giving
its own ratio; the script prints the median of those ratios and each round's, by CPU time (`time.process_time`, what
a loaded machine changes least) and by wall time. Ratios compare numbers measured in this run only.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


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


class Clock:
    """Wall and CPU seconds since it was made (CPU: this process's, every thread)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def seconds(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def plain_epoch_seconds(
    features: torch.Tensor, labels: torch.Tensor, batch_size: int | None, epochs: int
) -> tuple[float, float]:
    """Median (wall, CPU) seconds per epoch of a textbook loop over the same tensors: nn.Linear, BCE on logits,
    autograd, SGD, reshuffled each epoch like the project's sampler (full batch when batch_size is None)."""
    device, (n_rows, n_features) = features.device, features.shape
    model = torch.nn.Linear(n_features, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    times = []
    for epoch in range(epochs):
        sync(device)
        clock = Clock()
        if batch_size is None:
            batches = [(features, labels)]
        else:
            order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(epoch)).to(device)
            batches = (
                (features[order[s : s + batch_size]], labels[order[s : s + batch_size]])
                for s in range(0, n_rows, batch_size)
            )
        for x, y in batches:
            loss = F.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        sync(device)
        times.append(clock.seconds())
    kept = times[1:] if len(times) > 2 else times
    return statistics.median(t[0] for t in kept), statistics.median(t[1] for t in kept)


def project_fit_seconds(
    features: np.ndarray, labels: np.ndarray, batch_size: int | None, epochs: int, device_kind: str, root: Path
) -> tuple[float, float]:
    """(wall, CPU) seconds of `trainer.fit` for `epochs` epochs with train.py's default configuration on this table."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from logreg.checking import check_config
    from logreg.checkpoints import AtomicCheckpointIO
    from logreg.data import TabularDataModule
    from logreg.quiet import quiet_third_parties
    from logreg.table import Table
    from logreg.training import build_model, build_trainer

    quiet_third_parties()  # once Lightning is imported: its INFO lines go where a run sends them, not the console

    GlobalHydra.instance().clear()
    overrides = [
        f"trainer={'gpu' if device_kind == 'cuda' else 'cpu'}",
        f"epochs={epochs}",
        "lr=0.1",
        "monitor=train/loss",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(root)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    cfg = check_config(cfg)  # the TrainConfig train.py hands inward

    class SyntheticTable(TabularDataModule):
        def read(self) -> Table:
            return Table(features, labels, [f"x{i}" for i in range(1, features.shape[1] + 1)])

    datamodule = SyntheticTable(
        val_fraction=0.0, test_fraction=0.0, batch_size=batch_size, batches_per_step=cfg.data.batches_per_step
    )
    model = build_model(cfg, datamodule)
    trainer = build_trainer(cfg, root, root, AtomicCheckpointIO(), has_validation=False)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        clock = Clock()
        trainer.fit(model, datamodule=datamodule)  # the progress bar runs, unseen
        seconds = clock.seconds()
    return seconds


def project_epoch_seconds(
    features: np.ndarray,
    labels: np.ndarray,
    batch_size: int | None,
    device_kind: str,
    repeats: int = 1,
    epochs: int = 3,
) -> tuple[float, float]:
    """(wall, CPU) seconds per project epoch, everything per epoch included: (fit of `epochs` - fit of 1) /
    (epochs - 1), median of `repeats`.

    The fit of one epoch carries the set-up (folders, loggers, the first checkpoint), so the difference is what
    each further epoch costs.
    """
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
            single = project_fit_seconds(features, labels, batch_size, 1, device_kind, Path(one))
            several = project_fit_seconds(features, labels, batch_size, epochs, device_kind, Path(many))
        times.append(tuple((many - one) / (epochs - 1) for many, one in zip(several, single, strict=True)))
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def interleaved(
    rounds: int, plain: Callable[[], tuple[float, float]], project: Callable[[], tuple[float, float]]
) -> dict:
    """`rounds` rounds of plain then project: each side's median (wall, CPU) seconds, and the ratios plain / project
    of each round (CPU, wall)."""
    pairs = [(plain(), project()) for _ in range(rounds)]
    return {
        "plain": tuple(statistics.median(p[i] for p, _ in pairs) for i in (0, 1)),
        "project": tuple(statistics.median(q[i] for _, q in pairs) for i in (0, 1)),
        "cpu": [p[1] / q[1] for p, q in pairs],
        "wall": [p[0] / q[0] for p, q in pairs],
    }


def ratios(result: dict) -> str:
    cpu, wall = result["cpu"], result["wall"]
    rounds = ", ".join(f"{r:.2f}" for r in cpu)
    return f"{statistics.median(cpu):4.2f}x CPU (rounds {rounds}), {statistics.median(wall):4.2f}x wall"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="1/10 of the rows: a smoke run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both sides (default: torch's)")
    parser.add_argument("--batch-sizes", default="64,1024", help="mini-batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of plain and project")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shrink = 10 if args.quick else 1
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    bandwidth = copy_bandwidth(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device: {device} ({name}), {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s (best of 20 copies of 256 MiB)\n")
    print(
        f"mini-batches (rows per second by CPU time; ratio = plain / project time, above 1: the project is faster; "
        f"medians of {args.rounds} interleaved rounds)"
    )
    for n_rows, n_features in ((1_000_000 // shrink, 8), (100_000 // shrink, 100)):
        x_np, y_np = synthetic_table(n_rows, n_features)
        features, labels = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        for batch_size in batch_sizes:
            result = interleaved(
                args.rounds,
                lambda: plain_epoch_seconds(features, labels, batch_size, epochs=3),
                lambda: project_epoch_seconds(x_np, y_np, batch_size, device.type),
            )
            plain, project = result["plain"][1], result["project"][1]
            updates = math.ceil(n_rows / batch_size)
            print(
                f"  {n_rows:>9,} x {n_features:<3} batch {batch_size:>5}: plain {n_rows / plain:>12,.0f} rows/s "
                f"({plain / updates * 1e6:5.0f} us/update), project {n_rows / project:>12,.0f} rows/s "
                f"({project / updates * 1e6:5.0f} us/update): {ratios(result)}",
                flush=True,
            )

    n_rows = 1_000_000 // shrink
    x_np, y_np = synthetic_table(n_rows, 8)
    features, labels = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
    bound = features.nbytes / bandwidth
    result = interleaved(
        args.rounds,
        lambda: plain_epoch_seconds(features, labels, None, epochs=20),
        lambda: project_epoch_seconds(x_np, y_np, None, device.type, epochs=21),  # epochs of ms: many
    )
    plain, project = result["plain"][0], result["project"][0]  # against the bound: wall time
    print(f"\nfull batch, {n_rows:,} x 8 ({features.nbytes / 1e6:.0f} MB of features): seconds per epoch")
    print(f"  bound (read the features once at copy bandwidth) {bound * 1e3:7.2f} ms")
    print(
        f"  plain PyTorch loop                                {plain * 1e3:7.2f} ms = {plain / bound:4.2f}x the bound"
    )
    print(
        f"  project (every per-epoch cost included)           {project * 1e3:7.2f} ms = {project / bound:4.2f}x "
        f"the bound; plain / project: {ratios(result)}"
    )


if __name__ == "__main__":
    main()
