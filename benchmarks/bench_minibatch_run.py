"""One run's mini-batch training through `train.py`, against the plain PyTorch loop, as whole processes.

    python benchmarks/bench_minibatch_run.py [--rounds 3] [--rows 200000] [override ...]

A synthetic table of 200,000 x 8 float32 features and a 0/1 label, written once as a CSV. The project side is
`python train.py data=csv data.path=<the CSV> data.batch_size=64` with the default configuration otherwise (the
TensorBoard logger, the checkpoints, the plots callback, the progress bar, validation every epoch; the split's
default 10% test and 10% validation rows), at epochs=21 and at epochs=1; the plain side is this file with `--plain`:
numpy reads the CSV, the same 80% trains an `nn.Linear(8, 1)` with BCE on logits, autograd and SGD in shuffled
mini-batches of 64, and the 10% held out is scored after each epoch. What 20 epochs cost is each side's epochs=21 run
minus its epochs=1 run (start-up, reading, the first epoch's set-up and the final test cancel out). CPU time (user +
system) of each process, which a loaded machine changes least; wall time beside it. Rounds interleaved: project 21,
project 1, plain 21, plain 1, ...; prints each round's ratio (plain / project: above 1, the project is faster) and
the median. No timed asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_timing import REPO, timed  # noqa: E402

BATCH = 64


def write_table(path: Path, n_rows: int, n_features: int = 8, seed: int = 0) -> None:
    """A noisy linear rule: features (n_rows, n_features) standard normal, the label its thresholded sum."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    weight = rng.standard_normal(n_features).astype(np.float32)
    labels = (features @ weight + rng.standard_normal(n_rows, dtype=np.float32) > 0).astype(np.float32)
    np.savetxt(path, np.column_stack([features, labels]), delimiter=",", fmt="%.6g")


def plain(path: str, epochs: int) -> None:
    """The plain loop: 80% of the rows train, 10% are scored after each epoch (the project's split sizes)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(1)
    table = torch.from_numpy(np.loadtxt(path, delimiter=",", dtype=np.float32))
    order = torch.randperm(len(table))
    n_train, n_val = int(0.8 * len(table)), int(0.1 * len(table))
    train, val = table[order[:n_train]], table[order[n_train : n_train + n_val]]
    features, labels = train[:, :-1].contiguous(), train[:, -1].contiguous()
    model = torch.nn.Linear(features.shape[1], 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(epochs):
        shuffled = torch.randperm(n_train)
        for start in range(0, n_train, BATCH):
            rows = shuffled[start : start + BATCH]
            loss = F.binary_cross_entropy_with_logits(model(features[rows]).squeeze(-1), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = model(val[:, :-1]).squeeze(-1)
            val_loss = F.binary_cross_entropy_with_logits(logits, val[:, -1])
            val_acc = ((logits >= 0) == val[:, -1].bool()).float().mean()
    print(f"val/loss {val_loss.item():.4f} val/acc {val_acc.item():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--plain", nargs=2, metavar=("CSV", "EPOCHS"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="added to train.py's command line")
    args = parser.parse_args()
    if args.plain:
        plain(args.plain[0], int(args.plain[1]))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cpu: dict[tuple[str, int], list[float]] = {}
    wall: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        table = scratch / "table.csv"
        write_table(table, args.rows)
        for round_ in range(args.rounds):
            for epochs in (21, 1):
                command = [sys.executable, str(REPO / "train.py"), "data=csv", f"data.path={table}"]
                command += [f"data.batch_size={BATCH}", f"epochs={epochs}", "lr=1"]
                command += [f"hydra.run.dir={scratch}/run-{round_}-{epochs}", *args.overrides]
                seconds, cpu_seconds, _, _ = timed(command, env, scratch)
                cpu.setdefault(("project", epochs), []).append(cpu_seconds)
                wall.setdefault(("project", epochs), []).append(seconds)
            for epochs in (21, 1):
                command = [sys.executable, str(Path(__file__).resolve()), "--plain", str(table), str(epochs)]
                seconds, cpu_seconds, _, _ = timed(command, env, scratch)
                cpu.setdefault(("plain", epochs), []).append(cpu_seconds)
                wall.setdefault(("plain", epochs), []).append(seconds)
            project, plain_side = (cpu[(side, 21)][-1] - cpu[(side, 1)][-1] for side in ("project", "plain"))
            print(
                f"round {round_ + 1}: 20 epochs of {args.rows:,} x 8 at batch {BATCH}: project {project:6.2f} s CPU, "
                f"plain {plain_side:6.2f} s CPU: {plain_side / project:.3f}x",
                flush=True,
            )

    def twenty(clock: dict[tuple[str, int], list[float]], side: str) -> list[float]:
        return [many - one for many, one in zip(clock[(side, 21)], clock[(side, 1)], strict=True)]

    ratios = [p / q for p, q in zip(twenty(cpu, "plain"), twenty(cpu, "project"), strict=True)]
    wall_ratios = [p / q for p, q in zip(twenty(wall, "plain"), twenty(wall, "project"), strict=True)]
    print(
        f"median of {args.rounds} interleaved rounds: plain / project {statistics.median(ratios):.3f}x CPU "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}); wall {statistics.median(wall_ratios):.3f}x"
    )
    for side in ("project", "plain"):
        print(
            f"  {side:7s}: epochs=21 {statistics.median(cpu[(side, 21)]):6.2f} s CPU, epochs=1 "
            f"{statistics.median(cpu[(side, 1)]):6.2f} s CPU (medians)"
        )


if __name__ == "__main__":
    main()
