"""What `python predict.py ckpt_path=... input=new.csv output=pred.csv` does.

The input holds rows of features as in training (with or without the label column, which is then dropped; with a
header, columns are matched by name); the model applies its own preprocessing (the scaler fitted at training time
travels in the checkpoint) and the output CSV gets `probability` and `prediction` per row, in input order (and, with
`interval=<level>`, `lower` and `upper`: logreg/intervals.py); an output named `.gz`, `.bz2` or `.xz` is compressed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from logreg.checkpoints import data_spec, model_from_checkpoint, read_checkpoint
from logreg.intervals import probability_intervals, stored_record
from logreg.outputs import write_output
from logreg.schema import PredictConfig
from logreg.table import read_feature_rows

HEADER = "probability,prediction"
INTERVAL_HEADER = f"{HEADER},lower,upper"  # with interval=<level>: the bounds on each row's probability
# An output named .gz, .bz2 or .xz is written compressed, as pandas' to_csv does (the CSV reader takes each back).
_OPENERS: dict[str, Callable[..., IO[Any]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _opener(path: str | Path) -> Callable[..., IO[Any]]:
    return _OPENERS.get(Path(path).suffix.lower(), open)


def is_predictions_csv(path: Path) -> bool:
    """Whether `path` is an earlier output of predict.py (its first line is our header; a Parquet output: our
    columns)."""
    if is_parquet_output(path):
        try:
            return pq.read_schema(path).names in (HEADER.split(","), INTERVAL_HEADER.split(","))
        except (OSError, pa.ArrowException):
            return False
    try:
        with _opener(path)(path, "rb") as file:
            return file.readline().rstrip(b"\r\n") in (HEADER.encode(), INTERVAL_HEADER.encode())
    except (OSError, EOFError, lzma.LZMAError):  # not the compressed file its name says
        return False


def predict(cfg: PredictConfig) -> int:
    """Write the predictions; return the number of rows."""
    checkpoint = read_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint)
    model = model_from_checkpoint(checkpoint, cfg.ckpt_path)
    record = stored_record(checkpoint, cfg.ckpt_path) if cfg.interval is not None else None  # before the input
    data_options = checkpoint.get("datamodule_hyper_parameters", {})
    n_features = model.n_features
    feature_names = data_spec(checkpoint).get("feature_names") or [f"x{i}" for i in range(1, n_features + 1)]
    features = read_feature_rows(
        cfg.input, feature_names, data_options.get("label_column", -1), cfg.header, cfg.encoding, data_spec(checkpoint)
    )  # (N, F)
    threshold = model.decision_threshold() if cfg.threshold is None else cfg.threshold
    with torch.inference_mode():
        probs = model(torch.from_numpy(features)).numpy()  # (N,)
    predictions = (probs >= threshold).astype(np.int64)
    bounds = None  # (N,), (N,): the lower and upper bounds, where asked
    if record is not None and cfg.interval is not None:
        bounds = probability_intervals(features, record, cfg.interval)
    with write_output(
        cfg.output, inputs=[cfg.input, cfg.ckpt_path], overwrite=cfg.overwrite, same_kind=is_predictions_csv
    ) as partial:
        if is_parquet_output(cfg.output):
            columns = {"probability": pa.array(probs), "prediction": pa.array(predictions)}
            if bounds is not None:
                columns |= {"lower": pa.array(bounds[0]), "upper": pa.array(bounds[1])}
            pq.write_table(pa.table(columns), partial)
        else:
            _write_csv(partial, cfg.output, probs, predictions, bounds)
    print(f"{len(probs)} predictions written to {cfg.output} (threshold {threshold:.6g})")
    return len(probs)


def is_parquet_output(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _write_csv(
    partial: Path,
    output: str | Path,
    probs: np.ndarray,
    predictions: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    with _opener(output)(partial, "wt", encoding="utf-8", newline="") as file:
        if bounds is None:
            file.write(HEADER + "\n")
            file.writelines(f"{p:.9g},{label}\n" for p, label in zip(probs.tolist(), predictions.tolist()))
            return
        file.write(INTERVAL_HEADER + "\n")
        rows = zip(probs.tolist(), predictions.tolist(), bounds[0].tolist(), bounds[1].tolist())
        file.writelines(f"{p:.9g},{label},{low:.9g},{high:.9g}\n" for p, label, low, high in rows)
