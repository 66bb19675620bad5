"""Trials trained together (hydra/launcher=together): each trial's numbers and files equal its configuration trained
alone; the configs equal Hydra's compose; what cannot train together trains alone, and says why."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import warm

from conftest import REPO, event_entries, sampled, scalars
from logreg.checking import check_config

# Each trial of one group: every setting a group lets differ, mixed (and one shared pinned data.seed, so the seeds
# change only the initial weights).
MIXED_GRID = [
    ["lr=0.5"],
    ["lr=0.2", "model.optimizer.momentum=0.9", "model.optimizer.nesterov=true", "seed=2"],
    ["lr=0.3", "model.optimizer.momentum=0.5", "model.optimizer.weight_decay=0.01", "epochs=3"],
    ["optimizer=adam", "lr=0.05", "model.optimizer.betas=[0.8,0.99]", "model.optimizer.eps=1e-6", "seed=3"],
    ["optimizer=adamw", "lr=0.02", "model.optimizer.weight_decay=0.1", "model.pos_weight=balanced"],
    ["optimizer=adam", "lr=0.01", "model.pos_weight=2", "model.threshold=0.3", "model.optimizer.weight_decay=0.01"],
    ["lr=1", "model.tune_threshold=f1", "epochs=4"],
    ["optimizer=adamw", "lr=0.1", "model.tune_threshold=youden", "trainer.check_val_every_n_epoch=2"],
]


def shared(tiny_csv, precision, batch_size):
    return [
        "data=csv",
        f"data.path={tiny_csv}",
        "data.seed=1",
        f"data.batch_size={batch_size}",
        "data.batches_per_step=2",
        f"trainer.precision={precision}",
        "epochs=5",
        "callbacks.last_checkpoint.every_seconds=0",
    ]


has_matplotlib = importlib.util.find_spec("matplotlib") is not None


def allowed(value: float, tolerance: float) -> float:
    """The tolerance for a metric: `tolerance`, or for a number that is a float32 (torchmetrics computes the Brier
    score and the calibration error in float32, whatever the model's precision) two of float32's rounding steps."""
    is_float32 = float(np.float32(value)) == value
    return max(tolerance, 2**-22 * abs(value)) if is_float32 else tolerance


def weights(checkpoint_path: Path) -> torch.Tensor:
    state = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    return torch.cat([state["linear.weight"].flatten(), state["linear.bias"].flatten(), state["threshold"].view(1)])


def coefficients(folder: Path) -> list[list[float]]:
    rows = (folder / "coefficients.csv").read_text().splitlines()[1:]
    return [[float(cell) for cell in row.split(",")[1:] if cell] for row in rows]


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "batch_size", "tolerance"), [("32-true", "null", 1e-6), ("64-true", 16, 1e-10)])
def test_every_trial_trained_together_equals_its_configuration_trained_alone(
    compose, run, tiny_csv, tmp_path, precision, batch_size, tolerance
):
    from logreg.together_runs import group_key, train_group, write_trial

    grid = [[*shared(tiny_csv, precision, batch_size), *trial] for trial in MIXED_GRID]
    configs = []
    for n, overrides in enumerate(grid):
        configs.append(check_config(compose(*overrides, run_dir=tmp_path / f"together_{n}")))
    keys = {group_key(cfg, tmp_path / f"together_{n}") for n, cfg in enumerate(configs)}
    assert len(keys) == 1 and next(iter(keys))[0] is not None  # one group

    trained = train_group(configs)
    for n, overrides in enumerate(grid):
        together, alone = tmp_path / f"together_{n}", tmp_path / f"alone_{n}"
        write_trial(check_config(compose(*overrides, run_dir=together)), trained[n])
        run(*overrides, run_dir=alone)

        assert_same_run(together, alone, tolerance, overrides)


def assert_same_run(together: Path, alone: Path, tolerance: float, label: object) -> None:
    """The run folder `together` (a trial trained together) holds what `alone` (its configuration trained alone)
    holds: the same files; metrics, coefficients, checkpoint weights, images and curves (steps, values) equal."""

    def files(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "tfevents" not in p.name)

    assert files(together) == files(alone), label
    mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (together, alone))
    assert sorted(mine) == sorted(theirs), label
    differing = {n: (mine[n], theirs[n]) for n in theirs if abs(mine[n] - theirs[n]) > allowed(theirs[n], tolerance)}
    assert not differing, label
    close = {"atol": tolerance, "rtol": tolerance, "equal_nan": True}  # odds ratios: exp(coefficient)
    torch.testing.assert_close(torch.tensor(coefficients(together)), torch.tensor(coefficients(alone)), **close)
    for name in ("last.ckpt", *(p.name for p in (alone / "checkpoints").glob("best-*.ckpt"))):
        difference = weights(together / "checkpoints" / name) - weights(alone / "checkpoints" / name)
        assert difference.abs().max() <= tolerance, (label, name)
    images = [
        {tag: [e.step for e in entries] for tag, entries in event_entries(f, "images").items()}
        for f in (together, alone)
    ]
    assert images[0] == images[1] and (images[1] or not has_matplotlib), label  # the same images, steps
    mine_curves, their_curves = event_entries(together, "scalars"), event_entries(alone, "scalars")
    assert sorted(mine_curves) == sorted(their_curves), label
    for tag, entries in their_curves.items():
        assert [e.step for e in mine_curves[tag]] == [e.step for e in entries], (label, tag)
        pairs = zip(mine_curves[tag], entries, strict=True)
        assert all(abs(a.value - b.value) <= allowed(b.value, tolerance) for a, b in pairs), (label, tag)


# A grid that mixes group choices (optimizer, trainer, experiment, hydra/launcher), values of keys that only some
# choices have, lists, nulls and hydra.* keys: every job's config must be Hydra's own.
COMPOSE_GRID = [
    ["optimizer=adam", "lr=0.1", "model.pos_weight=2"],
    ["optimizer=adam", "lr=0.01", "model.pos_weight=balanced"],
    ["optimizer=sgd", "lr=1", "model.optimizer.momentum=0.9"],
    ["optimizer=sgd", "lr=0.5", "model.optimizer.momentum=0"],
    ["optimizer=adamw", "model.optimizer.betas=[0.8,0.9]", "data.batch_size=null"],
    ["trainer.precision=64-true", "data.batch_size=32", "seed=3"],
    ["trainer=ddp_cpu", "epochs=3", "hydra.job.chdir=false"],
    ["experiment=lab05", "lr=0.2"],
    ["scheduler=cosine", "model.scheduler.T_max=7", "callbacks=early_stopping"],
]


@pytest.fixture
def config_loader():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()
    GlobalHydra.instance().clear()


@pytest.mark.slow  # nine compositions of Hydra's own beside the sweep's
def test_each_jobs_config_equals_hydras_compose_at_one_compose_per_set_of_group_choices(config_loader):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from logreg.sweep_compose import SweepComposer

    master = config_loader.load_configuration("train", overrides=["hydra.sweep.dir=sweep"], run_mode=RunMode.MULTIRUN)
    composer = SweepComposer(config_loader)
    jobs = COMPOSE_GRID + [["lr=0.3", "seed=2"], ["lr=3", "seed=5"]] * 3
    for overrides in jobs:
        fast, hydra_own = composer.compose(master, overrides), config_loader.load_sweep_config(master, overrides)
        assert OmegaConf.to_container(fast) == OmegaConf.to_container(hydra_own), overrides  # every key, hydra's too
        assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(hydra_own)  # in the same order
        assert OmegaConf.get_type(fast.model) is OmegaConf.get_type(hydra_own.model)  # typed by the same schema
    distinct = {
        tuple(o for o in job if o.split("=")[0] in ("optimizer", "trainer", "experiment", "scheduler")) for job in jobs
    }
    assert composer.composed < len(distinct) + 3  # a compose per set of group choices (and of keys), not per job
    print(f"{composer.composed} composes for {len(jobs)} jobs ({len(distinct)} sets of group choices)")


@sampled(
    "overrides, reason",
    [
        (["optimizer=lbfgs"], "optimizer=lbfgs"),
        (
            ["callbacks=early_stopping", "callbacks.early_stopping.monitor=train/loss"],
            "callbacks.early_stopping.monitor=train/loss",
        ),
        (["trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2"], "trainer.num_nodes>1 (several nodes)"),
        (
            ["trainer=ddp", "trainer.strategy=ddp_find_unused_parameters_true"],
            "trainer.strategy=ddp_find_unused_parameters_true",
        ),
        (["model.gradient=autograd"], "model.gradient=autograd"),
        (["trainer.max_steps=5"], "trainer limits batches"),
        (["debug=fast_dev_run"], "trainer limits batches"),
        (["optimizer=adam", "model.optimizer.amsgrad=true"], "amsgrad or dampening"),
        (["trainer.min_epochs=2"], "trainer.min_epochs"),
        (["callbacks.plots.histograms=true"], "callbacks.plots.histograms"),
    ],
)
def test_a_trial_that_cannot_train_with_others_trains_alone_and_says_why(compose, tmp_path, overrides, reason):
    from logreg.together_runs import group_key

    assert group_key(check_config(compose(*overrides)), tmp_path) == (None, reason)


@sampled(
    "overrides",
    [
        ["lr=0.1"],
        ["optimizer=adam", "model.optimizer.betas=[0.5,0.9]"],
        ["optimizer=adamw"],
        ["model.optimizer.momentum=0.9", "model.optimizer.nesterov=true", "model.optimizer.weight_decay=0.1"],
        ["model.pos_weight=balanced", "model.threshold=0.3", "model.tune_threshold=f1"],
        ["epochs=7", "trainer.check_val_every_n_epoch=7"],
        ["seed=2", "data.seed=1"],
        ["seed=2"],  # its own split and order: its own rows (logreg.together_rows)
        ["data.seed=3"],
        ["cv.folds=3"],  # its folds: trials with rows of their own
        ["scheduler=cosine"],
        ["scheduler=step", "model.scheduler.gamma=0.5"],
        ["scheduler=plateau", "model.scheduler.monitor=train/loss"],
    ],
)
def test_trials_that_differ_only_in_per_trial_settings_share_a_group(compose, tmp_path, overrides):
    from logreg.together_runs import group_key

    base = group_key(check_config(compose()), tmp_path)
    assert base[0] is not None and group_key(check_config(compose(*overrides)), tmp_path) == base


# Trial folders are named for their overrides (hydra.sweep.subdir): characters JSON escapes among them
@sampled(
    "overrides",
    [["data.batch_size=32"], ["data.val_fraction=0.2"], ["trainer.precision=64-true"], ["threads=2"]],
    every=2,
)
def test_trials_with_another_batch_size_split_or_precision_do_not_share_a_group(compose, tmp_path, overrides):
    from logreg.together_runs import group_key

    key = group_key(check_config(compose(*overrides)), tmp_path)[0]
    assert key is not None and key != group_key(check_config(compose()), tmp_path)[0]


@pytest.fixture(scope="module")
def together_sweep(tmp_path_factory):
    """`python train.py -m` on the tiny CSV: 4 trials train together (lr x optimizer), 2 cannot (L-BFGS)."""
    import sys

    from conftest import make_table, write_table

    folder = tmp_path_factory.mktemp("together")
    tiny = write_table(folder / "tiny.csv", *make_table())
    command = [sys.executable, str(REPO / "train.py"), "-m", "data=csv", f"data.path={tiny}", "epochs=3"]
    result = warm.run(
        [*command, "lr=0.1,1", "optimizer=sgd,adam,lbfgs", f"hydra.sweep.dir={folder / 'sweep'}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


@pytest.mark.slow
def test_a_sweep_says_in_one_line_what_trained_together_and_why_the_rest_did_not(together_sweep):
    _, result = together_sweep

    assert "Sweep: 4 of 6 trials trained together, in 1 group; alone: 2 (optimizer=lbfgs)" in result.stdout
    ended = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert len(ended) == 6 and all("val/loss=" in line for line in ended)  # one line per trial, together or alone


@pytest.mark.slow
def test_every_trial_is_a_whole_run_in_its_own_folder(together_sweep):
    folder, _ = together_sweep

    with (folder / "sweep" / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6 and {row["status"] for row in rows} == {"ok"}
    for row in rows:
        trial = Path(row["run_dir"])
        for name in (
            ".hydra/config.yaml",
            ".hydra/overrides.yaml",
            "metrics.json",
            "coefficients.csv",
            "inference.json",
            "checkpoints/last.ckpt",
        ):
            assert (trial / name).is_file(), (trial, name)
        curves = scalars(trial)
        assert len(curves["train/loss"]) == 3 and len(curves["val/loss"]) == 3 and "test/loss" in curves


@pytest.mark.slow
def test_a_trial_trained_together_is_evaluated_predicted_exported_and_refuses_to_resume_in_one_line(together_sweep):
    import sys

    folder, _ = together_sweep
    trial = next((folder / "sweep").glob("*optimizer=adam*"))
    checkpoint = trial / "checkpoints" / "last.ckpt"
    (folder / "new.csv").write_text("0.1,0.2,0.3\n-0.5,0.5,0.0\n")

    def script(name, *arguments):
        return warm.run(
            [sys.executable, str(REPO / name), f"ckpt_path='{checkpoint}'", *arguments],  # quoted: the path has '='
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )

    evaluated = script("eval.py", "split=val")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    val_loss = json.loads((trial / "metrics.json").read_text())["val/loss"]
    assert f"{val_loss:.6f}" in evaluated.stdout  # the same model, scored again on its validation rows
    assert script("predict.py", "input=new.csv", "output=pred.csv").returncode == 0
    assert len((folder / "pred.csv").read_text().splitlines()) == 3
    assert script("export.py", "format=torchscript").returncode == 0
    resumed = script("train.py", "data=csv", f"data.path={folder / 'tiny.csv'}", "epochs=5", "optimizer=adam")
    assert resumed.returncode == 1
    assert resumed.stderr.strip().splitlines() == [resumed.stderr.strip()] and "trained together" in resumed.stderr


@pytest.mark.slow
def test_the_basic_launcher_is_one_override_away_and_trains_each_trial_alone(tmp_path, tiny_csv):
    import sys

    result = warm.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "data=csv",
            f"data.path={tiny_csv}",
            "epochs=2",
            "lr=0.1,1",
            "hydra/launcher=basic",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained together" not in result.stdout and "Launching 2 jobs locally" in result.stdout + result.stderr
    assert len(list((tmp_path / "sweep").glob("*/metrics.json"))) == 2


def test_a_trial_that_diverges_stops_alone_and_fails_as_its_own_run_would(compose, tiny_csv, tmp_path):
    from logreg.errors import TrainingDiverged
    from logreg.together_runs import train_group, write_trial

    overrides = ["data=csv", f"data.path={tiny_csv}", "epochs=4", "trainer.enable_progress_bar=false"]
    configs = [
        check_config(compose(*overrides, f"lr={lr}", run_dir=tmp_path / f"t{n}")) for n, lr in enumerate((0.5, 3e38))
    ]
    trained = train_group(configs)

    assert trained[0].history.diverged_at is None and len(trained[0].history.logs) == 8  # 4 epochs: train, val
    assert trained[1].history.diverged_at is not None
    assert torch.isfinite(trained[0].model.linear.weight).all()
    with pytest.raises(TrainingDiverged, match="lr=3e"):
        write_trial(check_config(compose(*overrides, "lr=3e38", run_dir=tmp_path / "t1")), trained[1])


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("seed", range(6))
def test_early_stopping_in_a_group_stops_each_trial_where_lightnings_early_stopping_would(mode, seed):
    from lightning.pytorch.callbacks import EarlyStopping

    from logreg.together import EarlyStop, TrialHistory

    rng = np.random.default_rng(seed)
    values = torch.tensor(np.round(rng.normal(size=12).cumsum() * 0.01, 3), dtype=torch.float32)  # ties included
    patience, min_delta = int(rng.integers(1, 4)), float(rng.choice([0.0, 0.005]))
    if seed == 5:
        values[7] = float("nan")  # a score that is not finite stops at once
    reference = EarlyStopping(monitor="val/loss", mode=mode, patience=patience, min_delta=min_delta)
    lightning_stop = next((e for e, v in enumerate(values) if reference._evaluate_stopping_criteria(v)[0]), None)
    rule, history = EarlyStop("val/loss", mode, patience, min_delta), TrialHistory()
    for epoch, value in enumerate(values):
        if history.stopped_at is None:
            rule.update(history, value, epoch)

    assert history.stopped_at == lightning_stop


@pytest.mark.slow
def test_trials_that_stop_early_in_a_group_equal_their_configurations_trained_alone(compose, run, tiny_csv, tmp_path):
    from logreg.together_runs import group_key, train_group, write_trial

    stopping = [
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=0.01",
    ]
    common = ["data=csv", f"data.path={tiny_csv}", "epochs=12", "callbacks.last_checkpoint.every_seconds=0", *stopping]
    grid = [[*common, f"lr={lr}"] for lr in (0.01, 0.3, 3.0)]
    configs = [
        check_config(compose(*overrides, run_dir=tmp_path / f"together_{n}")) for n, overrides in enumerate(grid)
    ]
    keys = {group_key(cfg, tmp_path / f"together_{n}") for n, cfg in enumerate(configs)}
    assert len(keys) == 1 and next(iter(keys))[0] is not None

    trained = train_group(configs)
    stopped = [trial.history.last_epoch for trial in trained]
    assert len(set(stopped)) > 1 and min(stopped) < 11, stopped  # they stop at epochs of their own, before the last
    for n, overrides in enumerate(grid):
        together, alone = tmp_path / f"together_{n}", tmp_path / f"alone_{n}"
        write_trial(check_config(compose(*overrides, run_dir=together)), trained[n])
        run(*overrides, run_dir=alone)
        mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (together, alone))
        assert sorted(mine) == sorted(theirs) and all(
            abs(mine[k] - theirs[k]) <= allowed(theirs[k], 1e-6) for k in theirs
        )
        ckpts = [torch.load(f / "checkpoints" / "last.ckpt", weights_only=True) for f in (together, alone)]
        assert (
            ckpts[0]["epoch"] == ckpts[1]["epoch"] == stopped[n] and ckpts[0]["global_step"] == ckpts[1]["global_step"]
        )
        assert (
            weights(together / "checkpoints" / "last.ckpt") - weights(alone / "checkpoints" / "last.ckpt")
        ).abs().max() <= 1e-6


# ------------------------------------------------------------------------------------ trials with rows of their own


@pytest.mark.parametrize(
    "served",
    [
        [{"seed": 1}, {"seed": 2}, {"seed": 3, "batch_size": 7}],  # splits that differ, full batch / mini-batches
        [{"seed": s, "batch_size": 16, "batches_per_step": 3} for s in (1, 2, 5)],  # orders that differ
        [{"seed": 4, "batch_size": 11, "batches_per_step": 2, "folds": 7, "fold": k} for k in range(7)],  # folds
        [{"seed": 1, "batch_size": 16, "shuffle": False}, {"seed": 2, "batch_size": 16, "shuffle": False}],
        [{"seed": 3, "folds": 4, "fold": k, "test_on": "val"} for k in range(4)],
    ],
)
def test_a_group_serves_each_trial_the_rows_its_own_datamodule_serves(tiny_csv, served):
    from logreg.data import CSVDataModule
    from logreg.together_rows import GroupRows, TrialRows

    by_size: dict = {}
    for options in served:  # trials of one group share the batch size: serve each batch size as a group
        by_size.setdefault(options.get("batch_size"), []).append(options)
    for members in by_size.values():
        modules = [CSVDataModule(str(tiny_csv), **options) for options in members]
        for module in modules:
            module.load()
        first = modules[0]
        rows = GroupRows(
            torch.from_numpy(first.table.features),
            torch.from_numpy(first.table.labels),
            [TrialRows.of(module) for module in modules],
            first.options.batch_size,
            first.options.batches_per_step,
        )
        rows.to(torch.device("cpu"), torch.float32)
        for epoch in range(2):
            rows.start_epoch(epoch)
            served_rows = [[] for _ in modules]  # per trial, per Lightning step: its (features, labels) mini-batches
            for step in range(rows.steps):
                for k in range(len(modules)):
                    served_rows[k].append([])
                for batch in rows.minibatches(step):
                    features, labels, weights = batch.features, batch.labels, batch.weights
                    for k in range(len(modules)):
                        n = int(batch.rows[k])
                        if n == 0:
                            continue
                        mine = (features[k], labels[k]) if features.dim() == 3 else (features, labels)
                        if weights is not None and features.dim() == 2:  # full batch: trial k's rows, by its weight
                            keep = weights[:, k] > 0
                            mine = (mine[0][keep], mine[1][keep])
                        served_rows[k][step].append((mine[0][:n], mine[1][:n]))
            for k, module in enumerate(modules):
                loader = module.train_dataloader()
                loader.sampler.set_epoch(epoch)
                from logreg.splits import minibatches

                theirs = [list(minibatches(chunk)) for chunk in loader]
                assert len(theirs) == rows.steps_of(k)
                mine = [step for step in served_rows[k] if step]
                assert len(mine) == len(theirs), (k, epoch)
                for my_step, their_step in zip(mine, theirs, strict=True):
                    assert len(my_step) == len(their_step)
                    for (a, y), (b, z) in zip(my_step, their_step, strict=True):
                        assert torch.equal(a, b) and torch.equal(y, z), (k, epoch)
        for split in ("val", "test"):
            held_out = {k: (f, y) for f, y, members in rows.held_out(split) for k in members}
            for k, module in enumerate(modules):
                theirs = module.rows(split if split == "val" else module.options.test_on)
                assert torch.equal(held_out[k][0], theirs[0]) and torch.equal(held_out[k][1], theirs[1])


SEED_GRID = [
    ["lr=0.5", "seed=1"],
    ["lr=0.5", "seed=2"],
    ["optimizer=adam", "lr=0.05", "seed=3"],
    ["lr=0.2", "model.optimizer.momentum=0.9", "model.pos_weight=balanced", "seed=4", "epochs=3"],
    ["optimizer=adamw", "lr=0.02", "model.tune_threshold=f1", "seed=5"],
]


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "batch_size", "tolerance"), [("32-true", "null", 1e-6), ("64-true", 16, 1e-10)])
def test_trials_whose_seeds_give_them_other_rows_and_orders_equal_their_configurations_trained_alone(
    compose, run, tiny_csv, tmp_path, precision, batch_size, tolerance
):
    from logreg.together_runs import group_key, train_group, write_trial

    common = [
        "data=csv",
        f"data.path={tiny_csv}",
        f"data.batch_size={batch_size}",
        "data.batches_per_step=2",
        f"trainer.precision={precision}",
        "epochs=5",
        "callbacks.last_checkpoint.every_seconds=0",
    ]
    grid = [[*common, *trial] for trial in SEED_GRID]
    configs = [
        check_config(compose(*overrides, run_dir=tmp_path / f"together_{n}")) for n, overrides in enumerate(grid)
    ]
    assert len({group_key(cfg, tmp_path / f"together_{n}") for n, cfg in enumerate(configs)}) == 1  # one group
    assert len({cfg.data.seed for cfg in configs}) == len(grid)  # each its own split and order

    trained = train_group(configs)
    assert len({tuple(t.datamodule.split_rows("val")) for t in trained}) == len(grid)
    for n, overrides in enumerate(grid):
        together, alone = tmp_path / f"together_{n}", tmp_path / f"alone_{n}"
        write_trial(check_config(compose(*overrides, run_dir=together)), trained[n])
        run(*overrides, run_dir=alone)
        assert_same_run(together, alone, tolerance, overrides)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "batching", "tolerance"),
    [
        ("32-true", ["data.batch_size=null"], 1e-6),
        ("64-true", ["data.batch_size=11", "data.batches_per_step=2", "model.tune_threshold=f1"], 1e-10),
    ],
)
def test_cross_validation_trained_together_equals_its_folds_trained_one_after_another(
    run, tiny_csv, tmp_path, capsys, precision, batching, tolerance
):
    overrides = ["data=csv", f"data.path={tiny_csv}", f"trainer.precision={precision}", *batching, "epochs=4"]
    overrides += ["cv.folds=7", "callbacks.last_checkpoint.every_seconds=0"]  # 7 folds: of unequal sizes
    together = run(*overrides, run_dir=tmp_path / "together")
    shown_together = capsys.readouterr().out
    alone = run(*overrides, "cv.together=false", run_dir=tmp_path / "sequence")  # a name as long: the same lines
    shown_alone = capsys.readouterr().out

    assert sorted(together) == sorted(alone)
    assert all(abs(together[n] - alone[n]) <= allowed(alone[n], tolerance) for n in alone), (together, alone)
    for k in range(7):
        assert_same_run(tmp_path / "together" / f"fold_{k}", tmp_path / "sequence" / f"fold_{k}", tolerance, k)
    # the same console: a line per fold, a table (spaces and line breaks aside: where Rich wraps the run folder's path
    # depends on its length, which may break a line inside "together")
    unwrapped_together, unwrapped_alone = ("".join(shown.split()) for shown in (shown_together, shown_alone))
    assert unwrapped_together.replace("together", "sequence") == unwrapped_alone


@pytest.mark.parametrize(
    "overrides", [["optimizer=lbfgs"], ["data.stream=true"], ["cv.together=false"], ["trainer=ddp_cpu"]]
)
def test_folds_train_one_after_another_where_trials_cannot_train_together(compose, tiny_csv, tmp_path, overrides):
    from logreg.together_runs import train_folds

    cfg = check_config(compose("data=csv", f"data.path={tiny_csv}", "cv.folds=3", *overrides))
    assert train_folds(cfg, tmp_path) is None


@pytest.mark.slow
def test_a_sweep_with_cv_folds_trains_trials_times_folds_together_as_each_trial_alone(run, tmp_path, tiny_csv):
    import sys

    common = ["data=csv", f"data.path={tiny_csv}", "epochs=3", "cv.folds=3", "optimized_metric=cv/val/loss"]
    result = warm.run(
        [sys.executable, str(REPO / "train.py"), "-m", *common, "lr=0.1,0.5", "seed=1,2"]
        + [f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Sweep: 4 of 4 trials trained together, in 1 group" in result.stdout  # 4 trials x 3 folds: one run
    assert len([line for line in result.stdout.splitlines() if line.startswith("trial ")]) == 4
    trial = next((tmp_path / "sweep").glob("*lr=0.5,seed=2*"))
    alone = tmp_path / "alone"
    run(*common, "lr=0.5", "seed=2", "cv.together=false", run_dir=alone)
    mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (trial, alone))
    assert sorted(mine) == sorted(theirs)
    assert all(abs(mine[n] - theirs[n]) <= allowed(theirs[n], 1e-6) for n in theirs), (mine, theirs)
    for k in range(3):
        assert_same_run(trial / f"fold_{k}", alone / f"fold_{k}", 1e-6, k)


@pytest.mark.slow
def test_trials_whose_encodings_differ_train_in_groups_of_their_own_and_equal_their_runs_alone(compose, run, tmp_path):
    from conftest import make_table, write_table
    from logreg.together_runs import train_group, write_trial

    features, labels = make_table()
    features[::7, 1] = np.nan  # missing values: each split's training rows give another fill (their mean)
    csv_path = write_table(tmp_path / "missing.csv", features, labels)
    grid = [["data=csv", f"data.path={csv_path}", "data.impute=mean", "epochs=3", f"seed={seed}"] for seed in (1, 2)]
    configs = [check_config(compose(*o, run_dir=tmp_path / f"together_{n}")) for n, o in enumerate(grid)]
    trained = train_group(configs)

    fills = [t.datamodule.state_dict()["encoding"] for t in trained]
    assert fills[0] != fills[1]  # two encodings, so two tables: two groups
    for n, overrides in enumerate(grid):
        together, alone = tmp_path / f"together_{n}", tmp_path / f"alone_{n}"
        write_trial(check_config(compose(*overrides, run_dir=together)), trained[n])
        run(*overrides, run_dir=alone)
        assert_same_run(together, alone, 1e-6, overrides)


# Every scheduler conf/scheduler/* offers (and none), with the optimizers whose step reads the lr in other ways (SGD:
# the lr tensor; Adam: the step size from lr in double; AdamW: also its decay factor 1 - lr * wd); plateau on a
# validation metric (also in a trial validated every other epoch) and on a training metric, each on its own values.
SCHEDULE_GRID = [
    ["lr=0.5"],
    ["lr=0.5", "scheduler=cosine"],
    ["lr=1", "scheduler=cosine", "model.scheduler.eta_min=0.1", "epochs=6"],
    ["optimizer=adam", "lr=0.1", "scheduler=cosine", "model.scheduler.T_max=3"],
    ["lr=0.8", "scheduler=step", "model.scheduler.step_size=2", "model.scheduler.gamma=0.5", "seed=2"],
    ["optimizer=adamw", "lr=0.1", "model.optimizer.weight_decay=0.5", "scheduler=step", "model.scheduler.step_size=3"],
    ["lr=2", "scheduler=plateau", "model.scheduler.patience=0", "model.scheduler.factor=0.5"],
    ["lr=3", "scheduler=plateau", "model.scheduler.patience=1", "model.scheduler.threshold=0.01"],
    ["optimizer=adam", "lr=0.3", "scheduler=plateau", "model.scheduler.patience=0", "model.scheduler.threshold=0.05"],
    ["lr=2", "scheduler=plateau", "model.scheduler.patience=0", "trainer.check_val_every_n_epoch=2"],
    [
        "lr=2",
        "scheduler=plateau",
        "model.scheduler.monitor=train/loss",
        "model.scheduler.threshold=0.05",
        "model.scheduler.patience=0",
    ],
]


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "batch_size", "tolerance"), [("32-true", "null", 1e-6), ("64-true", 16, 1e-10)])
def test_trials_with_schedules_in_a_group_equal_their_configurations_trained_alone(
    compose, run, tiny_csv, tmp_path, precision, batch_size, tolerance
):
    from logreg.together_runs import group_key, train_group, write_trial

    common = [*shared(tiny_csv, precision, batch_size), "epochs=9", "monitor=val/acc"]
    grid = [[*common, *trial] for trial in SCHEDULE_GRID]
    configs = [
        check_config(compose(*overrides, run_dir=tmp_path / f"together_{n}")) for n, overrides in enumerate(grid)
    ]
    keys = {group_key(cfg, tmp_path / f"together_{n}") for n, cfg in enumerate(configs)}
    assert len(keys) == 1 and next(iter(keys))[0] is not None  # one group

    trained = train_group(configs)
    for n, overrides in enumerate(grid):
        together, alone = tmp_path / f"together_{n}", tmp_path / f"alone_{n}"
        write_trial(check_config(compose(*overrides, run_dir=together)), trained[n])
        run(*overrides, run_dir=alone)
        assert_same_run(together, alone, tolerance, overrides)  # its files, metrics, weights, curves and images


def test_a_trials_schedule_sets_the_lr_its_torch_scheduler_gives_at_each_epoch():
    from logreg.schema import CosineConfig, PlateauConfig, StepConfig
    from logreg.together_schedules import TrialSchedule

    cases = [
        (CosineConfig(T_max=5, eta_min=0.01), lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5, 0.01)),
        (StepConfig(step_size=2, gamma=0.3), lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, 0.3)),
        (
            PlateauConfig(monitor="val/acc", patience=0, factor=0.5),
            lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, factor=0.5),
        ),
    ]
    scores = [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7]
    for config, reference in cases:
        parameter = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.SGD([parameter], lr=0.7)
        scheduler, schedule = reference(optimizer), TrialSchedule(0.7, config)
        for epoch, score in enumerate(scores):
            optimizer.step()
            validated = epoch != 3  # an epoch without validation: the plateau scheduler does not step
            schedule.step({"train/loss": 1.0, **({"val/acc": score} if validated else {})})
            if isinstance(config, PlateauConfig):
                if validated:
                    scheduler.step(score)
            else:
                scheduler.step()
            assert schedule.lr == optimizer.param_groups[0]["lr"], (config, epoch)
        assert schedule.lr != 0.7, config  # it did change the lr


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["optimizer=adam", "model.optimizer.betas=[0.8,0.9]", "scheduler=plateau"],
        ["optimizer=lbfgs", "trainer.precision=64-true", "callbacks=early_stopping", "logger=csv"],
        ["data=csv", "data.path=x.csv", "data.features=[a,2]", "data.categorical=[c]", "scheduler=cosine"],
        ["trainer=ddp_cpu", "model.pos_weight=balanced", "model.tune_threshold=f1", "callbacks=none"],
    ],
)
def test_plain_values_of_a_typed_config_are_what_omegaconf_gives(compose, overrides):
    from omegaconf import OmegaConf

    from logreg.checking import as_dict
    from logreg.training import plain

    cfg = check_config(compose(*overrides))
    nodes = [cfg.data, cfg.trainer, cfg.model, cfg.model.optimizer, cfg.cv, cfg.logger, *cfg.callbacks.values()]
    for node in [n for n in nodes if n is not None]:
        assert plain(node) == as_dict(OmegaConf.structured(node), resolve=True), node
