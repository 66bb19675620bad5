"""The whole `python train.py experiment=lab05` process against a plain PyTorch script of the lab (lab05_plain.py).

    python benchmarks/bench_lab05.py [--repeats 5] [--ddp]

Runs each command as its own process, `--repeats` times, and prints the median wall time and its ratio to the plain
script, with the lines that say where the project's time goes: `import torch`, which both pay (the plain script's
first optimizer step also imports torch._dynamo, as Lightning does), `import lightning` (with torchmetrics, which
imports scipy.signal when scipy is installed, and TensorBoard), Hydra alone, one epoch (start-up and tear-down), the
run without checkpoints. Both runs must reach the lab's final loss; the script checks it.
Needs data-03-diabetes.csv in $LOGREG_DATA_DIR or ../shared/data.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIABETES = "data-03-diabetes.csv"


def data_dir() -> Path:
    for folder in (os.environ.get("LOGREG_DATA_DIR"), REPO.parent / "shared" / "data", REPO / "data"):
        if folder and (Path(folder) / DIABETES).is_file():
            return Path(folder)
    sys.exit(f"{DIABETES} not found: set LOGREG_DATA_DIR to the folder that holds it")


def wall_time(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds from start to exit of `command`, and its stdout; a failing command stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ddp", action="store_true", help="also time trainer=ddp_cpu (2 processes over gloo)")
    args = parser.parse_args()
    folder = data_dir()
    env = {**os.environ, "LOGREG_DATA_DIR": str(folder)}
    python = sys.executable
    runs_dir = Path(tempfile.mkdtemp(prefix="bench_lab05_"))
    lab05 = [python, "train.py", "experiment=lab05"]
    commands = {  # name: command; train.py runs get their own run folder each time
        "plain PyTorch script (lab05_plain.py)": [python, "benchmarks/lab05_plain.py", str(folder / DIABETES)],
        "python train.py experiment=lab05": lab05,
        "  the same, epochs=1": [*lab05, "epochs=1"],
        "  the same, ~callbacks.checkpoint (no checkpoints)": [*lab05, "~callbacks.checkpoint"],
    }
    if args.ddp:
        commands["  the same, trainer=ddp_cpu (2 processes)"] = [*lab05, "trainer=ddp_cpu"]
    commands |= {
        "  python -c 'import torch'": [python, "-c", "import torch"],
        "  python -c 'import lightning'": [python, "-c", "import lightning"],
        "  python train.py --help (Hydra only)": [python, "train.py", "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for repeat in range(args.repeats):  # interleaved, so a slow moment of the machine touches every command alike
        for number, (name, command) in enumerate(commands.items()):
            run_dir = runs_dir / f"{repeat}-{number}"
            command = [*command, f"hydra.run.dir={run_dir}"] if command[:3] == lab05 else command
            seconds, outputs[name] = wall_time(command, env)
            times[name].append(seconds)

    plain_loss = float(re.search(r"loss (\S+)", outputs["plain PyTorch script (lab05_plain.py)"]).group(1))
    project_loss = json.loads((runs_dir / "0-1" / "metrics.json").read_text())["test/loss"]
    if abs(plain_loss - project_loss) > 1e-5:
        sys.exit(f"the runs disagree: plain loss {plain_loss:.6f}, project test/loss {project_loss:.6f}")
    shutil.rmtree(runs_dir)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    scipy = "installed" if importlib.util.find_spec("scipy") else "not installed"
    print(f"scipy: {scipy} (when it is, importing torchmetrics imports scipy.signal: the base install leaves it out)")
    print(f"final loss on the training rows: plain {plain_loss:.6f}, project {project_loss:.6f} (lab: 0.481234)")
    print(f"median wall time of {args.repeats} runs, each a fresh process:\n")
    plain = statistics.median(times["plain PyTorch script (lab05_plain.py)"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  {name:52s} {median:6.2f} s   {median / plain:5.2f}x plain")
    full = statistics.median(times["python train.py experiment=lab05"])
    one_epoch = statistics.median(times["  the same, epochs=1"])
    print(f"\n  per epoch of the project: {(full - one_epoch) / 99 * 1e3:.1f} ms ((100 epochs - 1 epoch) / 99)")


if __name__ == "__main__":
    main()
