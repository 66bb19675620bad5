"""Predict with a checkpoint: `python predict.py ckpt_path=... input=new.csv output=pred.csv` (keys: conf/predict.yaml).

The input holds rows of features as in training (with or without the label column, which is then dropped); the model
applies its own preprocessing (the scaler fitted at training time travels in the checkpoint) and the output CSV gets
`probability` and `prediction` per row, in input order.
"""

import hydra
from omegaconf import DictConfig


def predict(cfg: DictConfig) -> int:
    """Write the predictions; return the number of rows."""
    import numpy as np
    import torch

    from logreg.checkpoints import load_checkpoint
    from logreg.data import column_index, read_table
    from logreg.errors import ConfigError, DataError

    model, datamodule = load_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint)
    threshold = model.hparams.threshold if cfg.threshold is None else cfg.threshold
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold={threshold}: expected a probability strictly between 0 and 1")
    table, names, header = read_table(cfg.input, cfg.header)  # (N, C)
    n_features = model.hparams.n_features
    if table.shape[1] == n_features + 1:  # the label column is there too: drop it, as in training
        label_index = column_index(cfg.input, names, header, datamodule.hparams.get("label_column", -1))
        table = np.delete(table, label_index, axis=1)
    elif table.shape[1] != n_features:
        raise DataError(
            f"{cfg.input}: rows have {table.shape[1]} columns; the model takes {n_features} features "
            f"(or {n_features + 1} columns with the label). Use a CSV laid out as the training data"
        )
    with torch.inference_mode():
        probs = model(torch.from_numpy(np.ascontiguousarray(table))).numpy()  # (N,)
    predictions = (probs >= threshold).astype(np.int64)
    with open(cfg.output, "w") as file:
        file.write("probability,prediction\n")
        file.writelines(f"{p:.9g},{label}\n" for p, label in zip(probs.tolist(), predictions.tolist()))
    print(f"{len(probs)} predictions written to {cfg.output} (threshold {threshold})")
    return len(probs)


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from logreg.cli import errors_as_messages

    with errors_as_messages():
        predict(cfg)


if __name__ == "__main__":
    main()
