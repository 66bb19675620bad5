"""Ship a trained model as a file other programs run: ONNX (onnxruntime, ...) or TorchScript (torch.jit.load).

What is shipped is `Predictor`: the trained weight and bias with the training scaler folded in, and the decision
threshold, nothing else (no Lightning, no metrics): feature rows `features` (batch, F) float32 in,
`probability` (batch,) float32 and `prediction` (batch,) int64 out, exactly as `LogisticRegression` gives them. The
features are the raw columns, or, for a model trained with text columns or imputation, the encoded ones: then
`<output>.encoding.json` beside it lists, column by column, the categories, reference level and fill values.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from logreg.checkpoints import data_spec, model_from_checkpoint, read_checkpoint
from logreg.encoding import Encoding
from logreg.errors import ConfigError
from logreg.model import LogisticRegression
from logreg.outputs import check_output, write_output, write_text
from logreg.quiet import quiet_third_parties
from logreg.schema import ExportConfig


class Predictor(nn.Module):
    """features (B, F) float32 -> probabilities of class 1 (B,) and predictions (B,): sigmoid(features . w + b)."""

    if TYPE_CHECKING:  # the buffers __init__ registers, for the type checker (nn.Module's attribute lookup is untyped);
        # not at run time, where TorchScript would read these annotations (as strings it cannot resolve)
        weight: torch.Tensor
        bias: torch.Tensor
        threshold: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, threshold: float):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())  # (1, F)
        self.register_buffer("bias", bias.detach().clone())  # (1,)
        self.register_buffer("threshold", torch.tensor(threshold, dtype=weight.dtype))  # ()

    @classmethod
    def from_model(cls, model: LogisticRegression) -> Predictor:
        """The model's forward pass alone, on the CPU: the same folded weights its `logits` uses."""
        with torch.no_grad():
            return cls(*model.cpu().float().folded_weights(), model.decision_threshold()).eval()

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probability = torch.sigmoid(F.linear(features, self.weight, self.bias)).squeeze(-1)
        return probability, (probability >= self.threshold).long()


def to_onnx(model: LogisticRegression, path: str | os.PathLike) -> None:
    """Write an ONNX model: input `features` (batch, F) float32; outputs `probability` and `prediction` (batch,)."""
    try:  # what torch.onnx.export(dynamo=True) imports: the `export` extra
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"format=onnx needs the onnx and onnxscript packages ({error.name} is not installed): "
            "pip install 'logreg[export]', or export with format=torchscript, which needs nothing more"
        ) from error
    example = torch.zeros(2, model.n_features)  # (batch, F)
    torch.onnx.export(
        Predictor.from_model(model),
        (example,),
        str(path),
        input_names=["features"],
        output_names=["probability", "prediction"],
        dynamic_shapes={"features": {0: torch.export.Dim("batch")}},  # any number of rows
        external_data=False,  # one self-contained file: the weights are tiny
        dynamo=True,
        verbose=False,
    )


def to_torchscript(model: LogisticRegression, path: str | os.PathLike) -> None:
    """Write a TorchScript model for `torch.jit.load`: features (batch, F) -> (probabilities, predictions)."""
    torch.jit.save(torch.jit.script(Predictor.from_model(model)), str(path))


def is_onnx(path: Path) -> bool:
    try:
        import onnx

        onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return False
    return True


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


EXPORTERS = {  # format -> (writer, file suffix, what an earlier export of this format looks like)
    "onnx": (to_onnx, ".onnx", is_onnx),
    "torchscript": (to_torchscript, ".pt", is_torchscript),
}


ENCODING_SUFFIX = ".encoding.json"  # beside an exported model whose features are encoded from the raw columns


def encoding_path(output: Path) -> Path:
    """Where the encoding of the exported model `output` goes: `model.onnx` -> `model.onnx.encoding.json`."""
    return output.with_name(output.name + ENCODING_SUFFIX)


def is_encoding_json(path: Path) -> bool:
    try:
        return "raw_columns" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def encoding_json(encoding: Encoding, raw_columns: list[str]) -> str:
    """What turns raw columns into the exported model's `features`, column by column, in its order."""
    return json.dumps(
        {
            "raw_columns": raw_columns,
            "features": encoding.names,
            "unseen_category": encoding.unseen,
            "columns": encoding.to_dict()["columns"],
        },
        indent=2,
    )


def export(cfg: ExportConfig) -> Path:
    """What `python export.py ckpt_path=... format=...` does: write the exported model; return its path. A model
    trained on encoded columns (categories, imputed values) gets its encoding beside it, as JSON."""
    quiet_third_parties()
    write, suffix, same_kind = EXPORTERS[cfg.format]
    checkpoint = read_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint)
    model = model_from_checkpoint(checkpoint, cfg.ckpt_path)
    output = Path(cfg.output or Path(cfg.ckpt_path).with_suffix(suffix))
    spec = data_spec(checkpoint)
    encoding = Encoding.from_dict(spec["encoding"]) if spec.get("encoding") else None
    beside = encoding_path(output) if encoding is not None and not encoding.is_identity else None
    inputs, overwrite = [cfg.ckpt_path], cfg.overwrite
    if beside is not None:  # both refused before either is written
        check_output(beside, inputs=inputs, overwrite=overwrite, same_kind=is_encoding_json)
    with write_output(output, inputs=inputs, overwrite=overwrite, same_kind=same_kind) as partial:
        write(model, partial)
    n_features = model.n_features
    print(f"{cfg.format} model written to {output}: features (batch, {n_features}) -> probability, prediction (batch,)")
    if beside is not None and encoding is not None:
        text = encoding_json(encoding, list(spec["raw_features"]))
        write_text(beside, text, inputs=inputs, overwrite=overwrite, same_kind=is_encoding_json)
        print(f"its features are encoded from the raw columns as {beside} says")
    return output
