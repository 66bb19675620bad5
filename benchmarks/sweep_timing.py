"""How long a 20-trial Optuna sweep on the lab data takes, sequential vs 2 parallel joblib jobs (one run, one machine).

    LOGREG_DATA_DIR=/path/to/folder/with/the/csv python benchmarks/sweep_timing.py [--trials 20]

Prints wall times, seconds per trial, and the speed-up ratio. Both sweeps use the same seeded search space
(conf/hparams_search/optuna.yaml), so they train the same trials (parallel batches ask TPE two at a time, so the
proposals after the 5 random start-up trials may differ slightly).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sweep(trials: int, folder: Path, *parallel: str) -> float:
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "hparams_search=optuna",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweep.dir={folder}",
        "logger=none",
        *parallel,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder.parent)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sequential = sweep(args.trials, scratch / "sequential")
        parallel = sweep(
            args.trials,
            scratch / "parallel",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2",
        )
    print(f"{args.trials}-trial Optuna sweep on the lab data")
    print(f"  sequential (basic launcher):    {sequential:7.1f} s  ({sequential / args.trials:.2f} s per trial)")
    print(f"  2 parallel jobs (joblib):       {parallel:7.1f} s  ({parallel / args.trials:.2f} s per trial)")
    print(f"  speed-up, sequential / parallel: {sequential / parallel:.2f}x")


if __name__ == "__main__":
    main()
