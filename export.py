"""Export a checkpoint: `python export.py ckpt_path=... format=onnx|torchscript` (keys: conf/export.yaml).

The exported model takes raw feature rows `features` (batch, F) float32 and returns `probability` (batch,) of class 1:
the scaler fitted in training is folded into its weights, as in the LightningModule's forward.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def export(cfg: DictConfig) -> Path:
    """Write the exported model; return its path."""
    import torch

    from logreg.checkpoints import load_checkpoint
    from logreg.errors import ConfigError

    if cfg.format not in SUFFIXES:
        raise ConfigError(f"format={cfg.format}: expected one of {', '.join(SUFFIXES)}")
    model, _ = load_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint)
    output = Path(cfg.output or Path(cfg.ckpt_path).with_suffix(SUFFIXES[cfg.format]))
    example = torch.zeros(2, model.hparams.n_features)  # (batch, F)
    if cfg.format == "onnx":
        model.to_onnx(
            output, example, input_names=["features"], output_names=["probability"],
            dynamic_shapes={"features": {0: torch.export.Dim("batch")}},  # any number of rows
            external_data=False,  # one self-contained file: the weights are tiny
        )
    else:
        model.to_torchscript(output, method="trace", example_inputs=example)
    n_features = model.hparams.n_features
    print(f"{cfg.format} model written to {output}: features (batch, {n_features}) -> probability (batch,)")
    return output


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    from logreg.cli import errors_as_messages

    with errors_as_messages():
        export(cfg)


if __name__ == "__main__":
    main()
