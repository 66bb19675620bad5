"""The baseline that sweep_timing.py times a sweep against: plain PyTorch training a list of configurations in one
process, as a hand-written search loop would.

    python benchmarks/sweep_plain.py CONFIGS.json [--data path/to/data-03-diabetes.csv] [--json]
    python benchmarks/sweep_plain.py - < CONFIGS.json          # or the configurations on stdin

CONFIGS.json is a JSON list; each configuration is the overrides one sweep trial ran, as a list of "key=value"
strings (a trial's .hydra/overrides.yaml) or as an object. Keys, with the project's defaults (conf/train.yaml):
`lr` (1.0), `optimizer` (sgd | adam | adamw), `model.optimizer.weight_decay` (the optimizer config's: 0, 0, 0.01),
`data.batch_size` (null: full batch), `epochs` (100), `seed` (1), `data.val_fraction` and `data.test_fraction` (0.1);
the short names `weight_decay` and `batch_size` work too; keys that leave the numbers as they are (hparams_search,
logger, callbacks, other trainer.* options, threads) are ignored, any other key is refused.

Each configuration trains as the project does (torch and numpy only, no Lightning, no Hydra): the same stratified
split (logreg.splits.stratified_split, reimplemented: each class shuffled with numpy's default_rng(seed), the test
rows cut first, then the validation rows), torch.manual_seed(seed) before nn.Linear(8, 1), BCE on logits, the torch
optimizer with lr and weight_decay (SGD without momentum, Adam/AdamW with torch's betas), mini-batches of batch_size
in a fresh order each epoch (torch.randperm with a generator seeded seed + epoch) or one full batch when batch_size
is null or at least the training rows, for `epochs`; then the loss on the validation rows. One CPU thread
(torch.set_num_threads(1)), as the project's default `threads: 1`.

Prints each configuration's val loss and the seconds it took, then the total; with --json, one JSON object instead:
{"val_loss": [...], "seconds": [...], "total_s": training all, "process_s": since this script started (imports of
torch and numpy included, not the interpreter's own start-up)}.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

DIABETES = "data-03-diabetes.csv"
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "adam": 0.0, "adamw": 0.01}  # conf/optimizer/*.yaml
KEYS = {  # override key -> this script's name
    "lr": "lr",
    "optimizer": "optimizer",
    "model.optimizer.weight_decay": "weight_decay",
    "weight_decay": "weight_decay",
    "data.batch_size": "batch_size",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "trainer.max_epochs": "epochs",
    "seed": "seed",
    "data.val_fraction": "val_fraction",
    "data.test_fraction": "test_fraction",
}
# What does not change the numbers: the sweeper, logging, callbacks, the Trainer's other options (validation
# schedule, progress bar, ...)
IGNORED = ("hparams_search", "hydra.", "logger", "callbacks", "trainer.", "threads")


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """logreg.splits.stratified_split: train, val and test row indices, each class shuffled with `seed` and cut
    test first, then val; indices sorted."""
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


def value(text: str):
    """An override's value as Hydra reads the ones a sweep writes: null, an int, a float, or a string."""
    if text in ("null", "None", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def configuration(overrides: list | dict) -> dict:
    """One configuration (overrides as "key=value" strings or an object) with the project's defaults filled in."""
    if isinstance(overrides, list):  # "key=value", "+key=value", "~key" (a deletion: no value)
        pairs = [override.partition("=") for override in overrides]
        overrides = {key: value(text) if sep else None for key, sep, text in pairs}
    settings = {"lr": 1.0, "optimizer": "sgd", "batch_size": None, "epochs": 100, "seed": 1}
    settings |= {"val_fraction": 0.1, "test_fraction": 0.1}
    for key, setting in overrides.items():
        key = key.lstrip("+~")
        if key in KEYS:
            settings[KEYS[key]] = setting
        elif not key.startswith(IGNORED):
            sys.exit(f"sweep_plain.py: unknown key {key!r} (it knows {', '.join(KEYS)})")
    if settings["optimizer"] not in OPTIMIZERS:
        sys.exit(f"sweep_plain.py: optimizer={settings['optimizer']}: expected one of {', '.join(OPTIMIZERS)}")
    settings.setdefault("weight_decay", DEFAULT_WEIGHT_DECAY[settings["optimizer"]])
    return settings


def train(features: torch.Tensor, labels: torch.Tensor, settings: dict) -> float:
    """Train one configuration on the training rows; return the mean BCE on the validation rows."""
    split = stratified_split(labels.numpy(), settings["val_fraction"], settings["test_fraction"], settings["seed"])
    train_rows, val_rows = torch.from_numpy(split["train"]), torch.from_numpy(split["val"])
    x, y = features[train_rows], labels[train_rows]  # (n, 8), (n,)
    seed, n_rows = settings["seed"], len(y)
    batch_size = settings["batch_size"]
    full_batch = batch_size is None or batch_size >= n_rows

    torch.manual_seed(seed)  # as Lightning's seed_everything before the project builds its model
    model = nn.Linear(features.shape[1], 1)
    optimizer = OPTIMIZERS[settings["optimizer"]](
        model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"]
    )
    for epoch in range(settings["epochs"]):
        if full_batch:
            batches = [(x, y)]
        else:
            order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed + epoch))
            xs, ys = x[order], y[order]
            batches = [(xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, n_rows, batch_size)]
        for batch_x, batch_y in batches:
            loss = F.binary_cross_entropy_with_logits(model(batch_x).squeeze(-1), batch_y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(model(features[val_rows]).squeeze(-1), labels[val_rows]).item()


def data_file(given: str | None) -> Path:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    candidates = [given] if given else [os.environ.get("LOGREG_DATA_DIR"), shared, "data"]
    for candidate in candidates:
        if candidate is None:
            continue
        path = Path(candidate)
        path = path / DIABETES if path.is_dir() else path
        if path.is_file():
            return path
    sys.exit(f"sweep_plain.py: {DIABETES} not found: pass --data, or set LOGREG_DATA_DIR to the folder that holds it")


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("configs", nargs="?", default="-", help="a JSON file of configurations; - (default): stdin")
    parser.add_argument("--data", help=f"the CSV, or its folder (default: $LOGREG_DATA_DIR/{DIABETES})")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for sweep_timing.py)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    text = sys.stdin.read() if args.configs == "-" else Path(args.configs).read_text()
    settings = [configuration(c) for c in json.loads(text)]

    start = time.perf_counter()
    table = np.loadtxt(data_file(args.data), delimiter=",", dtype=np.float32)  # (759, 9): 8 features, the label
    features, labels = torch.from_numpy(np.ascontiguousarray(table[:, :-1])), torch.from_numpy(table[:, -1].copy())
    losses, seconds = [], []
    for one in settings:
        begin = time.perf_counter()
        losses.append(train(features, labels, one))
        seconds.append(time.perf_counter() - begin)
    end = time.perf_counter()

    if args.json:
        print(json.dumps({"val_loss": losses, "seconds": seconds, "total_s": end - start, "process_s": end - STARTED}))
        return
    for number, (one, loss, took) in enumerate(zip(settings, losses, seconds)):
        shown = " ".join(f"{k}={one[k]}" for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs"))
        print(f"{number:3d}  val/loss {loss:.6f}  {took:6.3f} s  {shown}")
    print(
        f"{len(settings)} configurations: {end - start:.2f} s training (data read included), "
        f"{end - STARTED:.2f} s since the script started (imports included)"
    )


if __name__ == "__main__":
    main()
