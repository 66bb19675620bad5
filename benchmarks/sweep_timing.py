"""A 20-trial Optuna sweep on the lab data against a plain PyTorch script that trains the same 20 configurations in
one process (sweep_plain.py); optionally also the sweep with 2 parallel joblib jobs. One run, one machine.

    LOGREG_DATA_DIR=/path/to/folder/with/the/csv python benchmarks/sweep_timing.py [--trials 20] [--repeats 1]
        [--parallel] [--verbose] [--keep DIR] [override ...]

The sweep is `python train.py -m hparams_search=optuna hydra.sweeper.n_trials=20` in the project's default
configuration otherwise (TensorBoard logger, the default callbacks, `threads: 1`), into a temporary sweep folder;
`override ...` (e.g. `logger=none`) is added to its command line. The script then reads the trials' configurations
from the sweep folder (each trial's .hydra/overrides.yaml) and runs sweep_plain.py on exactly those, in a fresh
process. Both are timed as whole processes, start to exit, imports included: each side pays its imports once. Both
run with OMP_NUM_THREADS=1 (the project sets one torch thread itself; the plain script does too).

Prints both wall times, seconds per trial and the ratio sweep / plain, with the CPU times beside them (on a machine
shared with other work they change less than the wall times; each side computes on one thread, so on an idle machine
CPU and wall times nearly agree); where the sweep's time goes (before the first trial, the trials, after the last:
from the trial folders' file times) and the plain script's (imports, training); and the largest difference between a
trial's val/loss and the plain script's for the same configuration (both float32, the same seeds: they agree to
rounding; the script fails only when one differs by more than 1e-3). `--verbose` lists each trial's val/loss on both
sides; `--repeats N` runs the sweep and the plain script N times, interleaved, and prints medians. `--parallel` adds
the sweep with `hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2` (TPE then proposes two trials
at a time, so after the 5 random start-up trials its trials may differ from the sequential ones). No timed asserts:
the numbers are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import yaml

REPO = Path(__file__).resolve().parents[1]
DIABETES = "data-03-diabetes.csv"
PLAIN = REPO / "benchmarks" / "sweep_plain.py"
TOLERANCE = 1e-3  # float32 on both sides, the same seeds: differences are rounding, far below this
JOBLIB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2")


def data_dir() -> Path:
    for folder in (os.environ.get("LOGREG_DATA_DIR"), REPO.parent / "shared" / "data", REPO / "data"):
        if folder and (Path(folder) / DIABETES).is_file():
            return Path(folder).resolve()
    sys.exit(f"{DIABETES} not found: set LOGREG_DATA_DIR to the folder that holds it")


def cpu_seconds() -> float:
    """User + system CPU time of this process's children that have ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float, str]:
    """Run `command` to its end: (seconds from start to exit, its CPU seconds, the wall clock at its start, its
    stdout); a failing command stops the benchmark. The CPU time is what a busy machine changes least."""
    cpu, started_at, start = cpu_seconds(), time.time(), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{(result.stderr or result.stdout)[-3000:]}")
    return seconds, cpu, started_at, result.stdout


def sweep(trials: int, folder: Path, env: dict[str, str], *overrides: str) -> tuple[float, float, float]:
    """Run the Optuna sweep into `folder`: (its wall time, its CPU time, the wall clock at its start)."""
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "hparams_search=optuna",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweep.dir={folder}",
        *overrides,
    ]
    seconds, cpu, started_at, _ = timed(command, env, folder.parent)
    return seconds, cpu, started_at


def read_trials(folder: Path) -> list[dict]:
    """The sweep's trials in order: number, overrides (as run), val/loss (None for a failed trial), folder."""
    trials = []
    for overrides in folder.glob("*/.hydra/overrides.yaml"):
        trial_dir = overrides.parent.parent
        metrics = trial_dir / "metrics.json"
        trials.append(
            {
                "trial": int(trial_dir.name.split("_", 1)[0]),
                "overrides": yaml.safe_load(overrides.read_text()) or [],
                "val_loss": json.loads(metrics.read_text()).get("val/loss") if metrics.is_file() else None,
                "dir": trial_dir,
            }
        )
    return sorted(trials, key=lambda t: t["trial"])


def phases(trials: list[dict], started_at: float, seconds: float) -> tuple[float, float, float, float]:
    """Where a sequential sweep's wall time went, from file times: (before trial 0's folder was written, trial 0, the
    other trials, after the last trial's metrics.json). Hydra writes a trial's .hydra/config.yaml as the trial starts;
    the project writes metrics.json at its end (then the logger's last event file and the summary follow). Trial 0
    also imports Lightning (train.py imports it once the first config checked out)."""
    starts = [(t["dir"] / ".hydra" / "config.yaml").stat().st_mtime for t in trials]
    last = max(t["dir"].joinpath("metrics.json").stat().st_mtime for t in trials if t["val_loss"] is not None)
    second = starts[1] if len(starts) > 1 else last
    return starts[0] - started_at, second - starts[0], last - second, started_at + seconds - last


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", action="store_true", help="also the sweep on 2 joblib jobs")
    parser.add_argument("--keep", type=Path, help="keep the sweep folders in this new folder")
    parser.add_argument("--repeats", type=int, default=1, help="run each side this often, interleaved; medians")
    parser.add_argument("--verbose", action="store_true", help="print every trial's val/loss on both sides")
    parser.add_argument("overrides", nargs="*", help="added to the sweep's command line (e.g. logger=none)")
    args = parser.parse_args()
    folder = data_dir()
    env = {**os.environ, "LOGREG_DATA_DIR": str(folder), "OMP_NUM_THREADS": "1"}

    runs = []  # one dict per repeat: the sweep's and the plain script's times, trials, plain results
    with tempfile.TemporaryDirectory(prefix="sweep_timing_") as scratch:
        scratch = args.keep.resolve() if args.keep else Path(scratch)
        if scratch.is_dir() and any(scratch.iterdir()):  # a sweep folder is claimed by its sweep alone
            sys.exit(f"--keep {scratch}: expected a new or empty folder")
        scratch.mkdir(parents=True, exist_ok=True)
        for repeat in range(args.repeats):  # sweep, then plain, then (--parallel) the joblib sweep: interleaved
            sweep_dir = scratch / f"sequential-{repeat}"
            seconds, cpu, started_at = sweep(args.trials, sweep_dir, env, *args.overrides)
            trials = read_trials(sweep_dir)
            if len(trials) != args.trials:
                sys.exit(f"the sweep left {len(trials)} trial folders, expected {args.trials}")
            configs = scratch / f"configs-{repeat}.json"
            configs.write_text(json.dumps([t["overrides"] for t in trials], indent=1))
            command = [sys.executable, str(PLAIN), str(configs), "--json", "--data", str(folder / DIABETES)]
            plain, plain_cpu, _, stdout = timed(command, env, scratch)
            run = {"sweep": seconds, "sweep_cpu": cpu, "plain": plain, "plain_cpu": plain_cpu, "trials": trials}
            run |= {"phases": phases(trials, started_at, seconds), "result": json.loads(stdout)}
            if args.parallel:
                parallel = sweep(args.trials, scratch / f"parallel-{repeat}", env, *JOBLIB, *args.overrides)
                run |= {"parallel": parallel[0], "parallel_cpu": parallel[1]}
            runs.append(run)

    trials, result = runs[0]["trials"], runs[0]["result"]
    same = all([t["overrides"] for t in r["trials"]] == [t["overrides"] for t in trials] for r in runs)
    sequential, sweep_cpu = median(r["sweep"] for r in runs), median(r["sweep_cpu"] for r in runs)
    plain, plain_cpu = median(r["plain"] for r in runs), median(r["plain_cpu"] for r in runs)
    parallel = median(r.get("parallel", 0.0) for r in runs)
    parallel_cpu = median(r.get("parallel_cpu", 0.0) for r in runs)
    before, first, others, after = (median(r["phases"][k] for r in runs) for k in range(4))
    plain_first = median(r["result"]["seconds"][0] for r in runs)
    plain_others = median(sum(r["result"]["seconds"][1:]) for r in runs)
    plain_startup = median(r["plain"] - sum(r["result"]["seconds"]) for r in runs)
    failed = [t["trial"] for t in trials if t["val_loss"] is None]
    losses = zip(trials, result["val_loss"])
    differences = [(abs(t["val_loss"] - loss), t["trial"]) for t, loss in losses if t["val_loss"] is not None]
    largest, worst = max(differences, default=(0.0, None))
    n = args.trials

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{n}-trial Optuna sweep on the lab data (hparams_search=optuna{''.join(' ' + o for o in args.overrides)})")
    print(
        "against sweep_plain.py on the same configurations; whole processes, one CPU thread each; "
        f"median of {args.repeats} run{'s' if args.repeats > 1 else ''}"
        f"{'' if same else ' (the repeats proposed different trials: compare with care)'}\n"
    )
    print(f"  {'':42s} {'wall':>8s} {'per trial':>10s} {'CPU':>8s}")
    lines = [("sweep, python train.py -m (launcher=together)", sequential, sweep_cpu)]
    lines += [("plain PyTorch (sweep_plain.py), one process", plain, plain_cpu)]
    if args.parallel:
        lines += [("sweep, 2 parallel jobs (joblib)", parallel, parallel_cpu)]
    for name, seconds, cpu in lines:
        print(f"  {name:42s} {seconds:7.1f}s {seconds / n:9.2f}s {cpu:7.1f}s")
    print(f"  ratio sweep / plain: {sequential / plain:.2f}x wall, {sweep_cpu / plain_cpu:.2f}x CPU   (goal: <= 1x)")
    if args.parallel:
        print(f"  ratio parallel sweep / plain: {parallel / plain:.2f}x wall")
        print(f"  speed-up, sequential / parallel: {sequential / parallel:.2f}x wall")
    print("\nwhere the time goes (medians)")
    rest = max(n - 1, 1)
    rows = [
        ("sweep: before trial 0 (imports Hydra, Optuna; the study)", before, ""),
        ("       trial 0 (imports Lightning, torch)", first, ""),
        (f"       trials 1-{n - 1} (trial 1's .hydra/ to last metrics.json)", others, f"{others / rest:.3f} s each"),
        ("       after the last metrics.json (events, summary, exit)", after, ""),
        ("plain: start-up, imports (torch, numpy), data read, exit", plain_startup, ""),
        ("       configuration 0 (imports torch._dynamo at its first step)", plain_first, ""),
        (f"       configurations 1-{n - 1}", plain_others, f"{plain_others / rest:.3f} s each"),
    ]
    for name, seconds, note in rows:
        print(f"  {name:66s} {seconds:6.1f} s  {note}".rstrip())
    if n > 1:
        print(f"  per trial after the first, sweep / plain: {others / plain_others:.1f}x")
    if args.verbose:
        print("\n  trial  sweep val/loss  plain val/loss  plain s  overrides")
        for t, loss, took in zip(trials, result["val_loss"], result["seconds"]):
            shown = "failed" if t["val_loss"] is None else f"{t['val_loss']:.6f}"
            print(f"  {t['trial']:5d}  {shown:>14s}  {loss:14.6f}  {took:7.3f}  {' '.join(t['overrides'])}")
    print(
        f"\nval/loss, sweep vs plain: largest difference {largest:.2e} (trial {worst}) over {len(differences)} trials"
        f"{f'; failed trials: {failed}' if failed else ''}"
    )
    if largest > TOLERANCE:
        sys.exit(f"the sweep and the plain script disagree by more than {TOLERANCE} (trial {worst})")


if __name__ == "__main__":
    main()
