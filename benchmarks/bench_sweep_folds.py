"""20 configurations x 5 folds (cv.folds=5) on a 200,000 x 8 table at batch 64: `python train.py -m` (the default
hydra/launcher=together: every trial's folds train together, all trials in one group) against a plain PyTorch
script that trains the same configurations' folds one after another in one process. Whole processes, CPU time (user
+ system of each child, from resource.getrusage(RUSAGE_CHILDREN): on a shared machine it changes least),
interleaved rounds, medians (issue 19 item 7: at most 0.1x the plain script).

    python benchmarks/bench_sweep_folds.py [--configs 20] [--folds 5] [--rows 200000] [--epochs 2] [--rounds 2]
        [override ...]

The table (N(0, 1) features, labels from a noisy linear rule) is generated once with numpy into a temporary folder
as a CSV. The sweep: `data=csv data.path=... data.standardize=false cv.folds=5 cv.refit=false
optimized_metric=cv/val/loss data.batch_size=64 epochs=E lr=<configs values, log-spaced in [0.001, 0.1]>`, trimmed
as sweep_together.py trims its trials (validation at the last epoch, no images, no best checkpoint, no bar);
`override ...` is added to its command line. The benchmark checks its summary line says every trial trained
together, in one group. cv.refit=false: the plain side does not refit either. data.standardize=false: the features
are already on one scale, so both sides train on the rows as written.

The plain side is this file run with --plain (torch and numpy only): for each configuration and each fold, the same
rows as the project's (logreg.splits' stratified split with the test rows cut, then its stratified folds of the
rest, reimplemented here: seed 1), torch.manual_seed(seed) then nn.Linear(8, 1), BCE on logits, torch.optim.SGD,
training rows = the other folds, batches of 64 in a fresh torch.randperm order each epoch, then the mean BCE on the
fold's rows; a configuration's cv/val/loss is the folds' mean. The rows are the project's; the initial weights and
the orders within an epoch are not taken from it, so the two sides need only agree roughly (on 2026-12-01 they
agreed to 2.4e-8: the project draws the same ones). The largest difference is printed. No timed asserts.

Run time with the defaults: about 9 minutes on a loaded 2-core machine (the plain side is about 80% of it); --epochs 1
--rounds 1 takes about 2.5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRIMMED = (
    "trainer.check_val_every_n_epoch=${epochs}",
    "trainer.enable_progress_bar=false",
    "callbacks.checkpoint=null",
    "callbacks.plots=null",
)
SEED = 1  # conf/train.yaml's seed: the split, the folds
TEST_FRACTION = 0.1  # conf/schema's data.test_fraction default


def rates(n_configs: int) -> list[float]:
    return [round(0.001 * 100 ** (i / max(n_configs - 1, 1)), 6) for i in range(n_configs)]


# ---------------------------------------------------------------- the plain side (a process of its own: --plain)


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """logreg.splits.stratified_split, reimplemented."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in (0.0, 1.0):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(test_fraction * len(rows))
        n_val = round(val_fraction * len(rows))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    return {split: np.sort(np.concatenate(chunks)) for split, chunks in parts.items()}


def stratified_folds(rows: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """logreg.splits.stratified_folds, reimplemented."""
    rng = np.random.default_rng([seed, folds])
    assigned: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for label in (0.0, 1.0):
        members = rng.permutation(rows[labels[rows] == label])
        for fold in range(folds):
            assigned[fold].append(members[fold::folds])
    return [np.sort(np.concatenate(parts)) for parts in assigned]


def plain(csv: str, lrs: list[float], folds: int, epochs: int, batch_size: int) -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(1)
    table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
    features, labels = torch.from_numpy(np.ascontiguousarray(table[:, :-1])), torch.from_numpy(table[:, -1].copy())
    non_test = stratified_split(table[:, -1], 0.0, TEST_FRACTION, SEED)["train"]
    parts = stratified_folds(non_test, table[:, -1], folds, SEED)
    losses = []
    for lr in lrs:
        per_fold = []
        for k in range(folds):
            train_rows = torch.from_numpy(np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k])))
            val_rows = torch.from_numpy(parts[k])
            x, y = features[train_rows], labels[train_rows]
            torch.manual_seed(SEED)
            model = nn.Linear(features.shape[1], 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            for epoch in range(epochs):
                order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED + epoch))
                xs, ys = x[order], y[order]
                for i in range(0, len(y), batch_size):
                    loss = F.binary_cross_entropy_with_logits(
                        model(xs[i : i + batch_size]).squeeze(-1), ys[i : i + batch_size]
                    )
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            with torch.no_grad():
                out = model(features[val_rows]).squeeze(-1)
                per_fold.append(F.binary_cross_entropy_with_logits(out, labels[val_rows]).item())
        losses.append(sum(per_fold) / folds)
    print(json.dumps({"cv_val_loss": losses}))


# ---------------------------------------------------------------- the benchmark


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of `command` run to its end; a failing command stops the benchmark."""
    cpu, start = cpu_seconds(), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{(result.stderr or result.stdout)[-3000:]}")
    return wall, cpu, result.stdout


def sweep_losses(folder: Path) -> dict[float, float]:
    """lr -> cv/val/loss of each trial in the sweep folder (from .hydra/overrides.yaml and metrics.json)."""
    import yaml

    losses = {}
    for overrides in folder.glob("*/.hydra/overrides.yaml"):
        given = dict(o.split("=", 1) for o in yaml.safe_load(overrides.read_text()) if "=" in o)
        metrics = json.loads((overrides.parent.parent / "metrics.json").read_text())
        losses[float(given["lr"])] = metrics["cv/val/loss"]
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--plain", metavar="CSV", help=argparse.SUPPRESS)  # the plain side's own process
    parser.add_argument("overrides", nargs="*", help="added to the sweep's command line")
    args = parser.parse_args()
    lrs = rates(args.configs)
    if args.plain:
        plain(args.plain, lrs, args.folds, args.epochs, args.batch_size)
        return

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cpu: dict[str, list[float]] = {"sweep": [], "plain": []}
    wall: dict[str, list[float]] = {"sweep": [], "plain": []}
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="bench_sweep_folds_") as scratch_name:
        scratch = Path(scratch_name)
        rng = np.random.default_rng(0)
        features = rng.normal(size=(args.rows, 8)).astype(np.float32)
        labels = (features @ np.linspace(1, -1, 8) + rng.normal(size=args.rows) > 0).astype(np.float32)
        csv = scratch / "table.csv"
        np.savetxt(csv, np.column_stack([features, labels]), delimiter=",", fmt="%.6g")
        common = [
            "data=csv",
            f"data.path={csv}",
            "data.standardize=false",
            f"cv.folds={args.folds}",
            "cv.refit=false",
            "optimized_metric=cv/val/loss",
            f"data.batch_size={args.batch_size}",
            f"epochs={args.epochs}",
            "lr=" + ",".join(map(str, lrs)),
            *TRIMMED,
        ]
        plain_command = [sys.executable, str(Path(__file__).resolve()), "--plain", str(csv)]
        plain_command += [f"--configs={args.configs}", f"--folds={args.folds}", f"--epochs={args.epochs}"]
        plain_command += [f"--batch-size={args.batch_size}"]
        for round_ in range(args.rounds):
            folder = scratch / f"sweep-{round_}"
            command = [sys.executable, str(REPO / "train.py"), "-m", *common, f"hydra.sweep.dir={folder}"]
            seconds, used, stdout = timed(command + args.overrides, env, scratch)
            expected = f"Sweep: {args.configs} of {args.configs} trials trained together, in 1 group"
            line = next((text for text in stdout.splitlines() if text.startswith("Sweep: ")), "(no summary line)")
            if not line.startswith(expected):
                sys.exit(f"expected every trial trained together in one group; the sweep said: {line}")
            wall["sweep"].append(seconds)
            cpu["sweep"].append(used)
            print(f"round {round_}: sweep {used:.2f} s CPU ({seconds:.2f} s wall); {line}", flush=True)
            seconds, used, stdout = timed(plain_command, env, scratch)
            wall["plain"].append(seconds)
            cpu["plain"].append(used)
            print(f"round {round_}: plain {used:.2f} s CPU ({seconds:.2f} s wall)", flush=True)
            mine = sweep_losses(folder)
            theirs = json.loads(stdout)["cv_val_loss"]
            worst = max([worst, *(abs(mine[lr] - loss) for lr, loss in zip(lrs, theirs, strict=True))])
            shown = ", ".join(
                f"{mine[lr]:.5f}/{loss:.5f}" for lr, loss in list(zip(lrs, theirs))[:: max(len(lrs) // 4, 1)]
            )
            print(f"round {round_}: cv/val/loss sweep/plain at a few lr: {shown}", flush=True)
    sweep_cpu, plain_cpu = median(cpu["sweep"]), median(cpu["plain"])
    print(
        f"\n{args.configs} configurations x {args.folds} folds, {args.rows:,} x 8, batch {args.batch_size}, "
        f"{args.epochs} epochs; CPU seconds of whole processes, median of {args.rounds} interleaved rounds"
    )
    print(f"  python train.py -m (launcher=together): {sweep_cpu:7.2f} s  ({median(wall['sweep']):.2f} s wall)")
    print(f"  plain PyTorch, one process:             {plain_cpu:7.2f} s  ({median(wall['plain']):.2f} s wall)")
    print(
        f"  ratio sweep / plain: {sweep_cpu / plain_cpu:.3f}x CPU, per round: "
        + ", ".join(f"{s / p:.3f}x" for s, p in zip(cpu["sweep"], cpu["plain"]))
        + "   (target: <= 0.1x)"
    )
    print(f"largest |cv/val/loss - plain's| over the configurations and rounds: {worst:.2g}")


if __name__ == "__main__":
    main()
