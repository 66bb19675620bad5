"""Export a checkpoint: `python export.py ckpt_path=... format=onnx|torchscript` (keys: conf/export.yaml).

The exported model takes raw feature rows `features` (batch, F) float32 and returns `probability` and `prediction`
(batch,): the scaler fitted in training is folded into its weights, and the decision threshold travels with it
(logreg/export.py).
"""

import hydra
from omegaconf import DictConfig

from logreg.checking import check_config
from logreg.errors import one_line_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@one_line_errors
def main(cfg: DictConfig) -> None:
    config = check_config(cfg)  # an ExportConfig
    from logreg.export import export  # torch and Lightning are imported here, once the config checked out

    export(config)


if __name__ == "__main__":
    run_entry(main)
