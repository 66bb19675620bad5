"""The whole `python train.py experiment=lab05` process against a plain PyTorch script of the lab (lab05_plain.py).

    python benchmarks/bench_lab05.py [--repeats 5]

Each command runs as its own process, `--repeats` times, interleaved; the script prints the median wall times and
their ratio to the plain script, then where train.py's time goes: the same work done phase by phase in one process
(imports, compose and check the config, read the data, build, fit, test, report), timed with perf_counter. Both the
plain script and the project run on one CPU thread (the project's default, `threads: 1`; OMP_NUM_THREADS=1 for the
plain script), so the comparison is at equal thread settings. Both runs must reach the lab's final loss; the script
checks it. Needs data-03-diabetes.csv in $LOGREG_DATA_DIR or ../shared/data.
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

PHASES = r"""
import sys, time, json
from pathlib import Path
clock = [("start", time.perf_counter())]
def mark(name): clock.append((name, time.perf_counter()))
import hydra, omegaconf, logreg.checking
mark("import hydra")
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = compose("train", overrides=["experiment=lab05"], return_hydra_config=True)
with open_dict(cfg):
    cfg.hydra.runtime.output_dir = sys.argv[2]
    cfg.hydra.job.num = 0
HydraConfig.instance().set_config(cfg)
cfg = logreg.checking.check_config(cfg)  # the TrainConfig train.py hands inward
mark("compose and check the config")
import torch, lightning, torchmetrics
mark("import torch, Lightning, torchmetrics")
from logreg import training
from logreg.checkpoints import AtomicCheckpointIO
from logreg.report import record_run, report
from logreg.outputs import claim_folder
from logreg.quiet import quiet_third_parties
quiet_third_parties()
torch.set_num_threads(cfg.threads)
mark("import the project")
run_dir = claim_folder(sys.argv[2])
lightning.seed_everything(cfg.seed, workers=True, verbose=False)
datamodule = training.build_datamodule(cfg)
mark("read the data")
model = training.build_model(cfg, datamodule)
trainer = training.build_trainer(cfg, run_dir, run_dir, AtomicCheckpointIO(), has_validation=False)
mark("build model and trainer")
trainer.fit(model, datamodule=datamodule)
mark("fit (100 epochs)")
metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
metrics |= trainer.test(model, datamodule=datamodule, verbose=False)[0]
mark("test")
record_run(trainer.loggers, training.hyperparameters(cfg, model, datamodule), metrics)
report(metrics, run_dir, model, datamodule, "train")
mark("report")
print("PHASES " + json.dumps([(name, t - clock[i][1]) for i, (name, t) in enumerate(clock[1:])]))
"""


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
    args = parser.parse_args()
    folder = data_dir()
    env = {**os.environ, "LOGREG_DATA_DIR": str(folder), "OMP_NUM_THREADS": "1"}
    python = sys.executable
    runs_dir = Path(tempfile.mkdtemp(prefix="bench_lab05_"))
    lab05 = [python, "train.py", "experiment=lab05"]
    commands = {  # name: command; train.py runs get their own run folder each time
        "plain PyTorch script (lab05_plain.py)": [python, "benchmarks/lab05_plain.py", str(folder / DIABETES)],
        "python train.py experiment=lab05": lab05,
        "  the same, epochs=1": [*lab05, "epochs=1"],
        "  python -c 'import torch'": [python, "-c", "import torch"],
        "  python -c 'import lightning, torchmetrics, hydra'": [python, "-c", "import lightning, torchmetrics, hydra"],
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
    phases = []
    for repeat in range(args.repeats):
        _, stdout = wall_time([python, "-c", PHASES, str(REPO / "conf"), str(runs_dir / f"phases-{repeat}")], env)
        phases.append(dict(json.loads(stdout.split("PHASES ", 1)[1])))

    plain_loss = float(re.search(r"loss (\S+)", outputs["plain PyTorch script (lab05_plain.py)"]).group(1))
    project_loss = json.loads((runs_dir / "0-1" / "metrics.json").read_text())["test/loss"]
    if abs(plain_loss - project_loss) > 1e-5:
        sys.exit(f"the runs disagree: plain loss {plain_loss:.6f}, project test/loss {project_loss:.6f}")
    shutil.rmtree(runs_dir)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    installed = [name for name in ("scipy", "matplotlib") if importlib.util.find_spec(name)]
    print(
        f"installed among the slow imports: {', '.join(installed) or 'neither scipy nor matplotlib'} "
        "(torchmetrics imports them at start-up when they are)"
    )
    print(f"final loss on the training rows: plain {plain_loss:.6f}, project {project_loss:.6f} (lab: 0.481234)")
    print(f"median wall time of {args.repeats} runs, each a fresh process, one CPU thread:\n")
    plain = statistics.median(times["plain PyTorch script (lab05_plain.py)"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  {name:52s} {median:6.2f} s   {median / plain:5.2f}x plain")
    full = statistics.median(times["python train.py experiment=lab05"])
    one_epoch = statistics.median(times["  the same, epochs=1"])
    print(f"\n  per epoch of the project: {(full - one_epoch) / 99 * 1e3:.1f} ms ((100 epochs - 1 epoch) / 99)")
    print("\nwhere train.py's time goes (the same work phase by phase in one process; medians):")
    for name in phases[0]:
        print(f"  {name:40s} {statistics.median(p[name] for p in phases):6.3f} s")
    print(f"  {'(all phases)':40s} {statistics.median(sum(p.values()) for p in phases):6.3f} s")


if __name__ == "__main__":
    main()
