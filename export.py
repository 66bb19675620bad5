"""Export a checkpoint: `python export.py ckpt_path=... format=onnx|torchscript` (keys: conf/export.yaml).

The exported model takes raw feature rows `features` (batch, F) float32 and returns `probability` (batch,) of class 1:
the scaler fitted in training is folded into its weights, as in the LightningModule's forward.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig


def export(cfg: DictConfig) -> Path:
    """Write the exported model; return its path."""
    from logreg.checkpoints import load_checkpoint
    from logreg.errors import ConfigError
    from logreg.export import EXPORTERS

    if cfg.format not in EXPORTERS:
        raise ConfigError(f"format={cfg.format}: expected one of {', '.join(EXPORTERS)}")
    write, suffix = EXPORTERS[cfg.format]
    model, _ = load_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint)
    output = write(model, cfg.output or Path(cfg.ckpt_path).with_suffix(suffix))
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
