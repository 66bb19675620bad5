"""A grid sweep whose trials train together (hydra/launcher=together, the default for -m) against the plain PyTorch
script that trains the same configurations one after another in one process (sweep_plain.py), and against the same
sweep with Hydra's basic launcher (every trial alone). Whole processes, CPU time (user + system of each child: on a
shared machine it changes least), interleaved rounds, medians.

    LOGREG_DATA_DIR=/path/to/folder/with/the/csv python benchmarks/sweep_together.py [--configs 20 100] [--rounds 3]
        [--basic] [override ...]

The grid is lr (configs / 4 values, log-spaced in [0.01, 1]) x optimizer (sgd, adam) x model.optimizer.weight_decay
(0, 0.001) on the lab data, full batch, 100 epochs, trimmed as conf/hparams_search/optuna.yaml trims a search's
trials (validation at the last epoch, no images, no best checkpoint, no bar); `override ...` is added to the sweep's
command line. The plain script reads the configurations back from the trial folders. Prints each ratio, and the
largest val/loss difference between a trial and the plain script's run of its configuration. No timed asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_timing import DIABETES, PLAIN, REPO, data_dir, read_trials, timed  # noqa: E402

TRIMMED = (
    "trainer.check_val_every_n_epoch=${epochs}",
    "trainer.enable_progress_bar=false",
    "callbacks.checkpoint=null",
    "callbacks.plots=null",
)


def grid(n_configs: int) -> list[str]:
    n_lr = max(n_configs // 4, 1)
    rates = [round(0.01 * 100 ** (i / max(n_lr - 1, 1)), 5) for i in range(n_lr)]
    return ["lr=" + ",".join(map(str, rates)), "optimizer=sgd,adam", "model.optimizer.weight_decay=0,0.001"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--basic", action="store_true", help="also time the sweep with hydra/launcher=basic")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    source = data_dir()
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "LOGREG_DATA_DIR": str(source)}
    launchers = {"together": [], **({"basic": ["hydra/launcher=basic"]} if args.basic else {})}
    cpu: dict[tuple[int, str], list[float]] = {}
    worst = 0.0
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for round_ in range(args.rounds):
            for n_configs in args.configs:
                trials = None
                for name, extra in launchers.items():
                    folder = scratch / f"{name}-{n_configs}-{round_}"
                    command = [sys.executable, str(REPO / "train.py"), "-m", *grid(n_configs), *TRIMMED]
                    command += [*extra, f"hydra.sweep.dir={folder}", *args.overrides]
                    _, seconds, _, _ = timed(command, env, scratch)
                    cpu.setdefault((n_configs, name), []).append(seconds)
                    trials = read_trials(folder)
                assert trials is not None
                configs = scratch / f"configs-{n_configs}.json"
                configs.write_text(json.dumps([t["overrides"] for t in trials]))
                plain = [sys.executable, str(PLAIN), str(configs), "--json", "--data", str(source / DIABETES)]
                _, seconds, _, stdout = timed(plain, env, scratch)
                cpu.setdefault((n_configs, "plain"), []).append(seconds)
                losses = json.loads(stdout)["val_loss"]
                worst = max([worst, *(abs(t["val_loss"] - v) for t, v in zip(trials, losses, strict=True))])
    print(f"CPU seconds, median of {args.rounds} interleaved rounds (whole processes):")
    for n_configs in args.configs:
        plain = median(cpu[(n_configs, "plain")])
        for name in launchers:
            mine = median(cpu[(n_configs, name)])
            ratio = mine / plain
            print(f"  {n_configs:4d} configs, launcher={name:8s}: {mine:7.2f} s; plain {plain:6.2f} s; {ratio:.2f}x")
    print(f"largest |val/loss - plain's| over every trial: {worst:.2g}")


if __name__ == "__main__":
    main()
