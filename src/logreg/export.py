"""Ship a trained model as a file other programs run: ONNX (onnxruntime, ...) or TorchScript (torch.jit.load).

What is shipped is `Probabilities`: the trained weight and bias with the training scaler folded in, nothing else (no
Lightning, no metrics), so the file maps raw feature rows to p(y=1) exactly as `LogisticRegression.forward` does.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from logreg.errors import ConfigError
from logreg.model import LogisticRegression


class Probabilities(nn.Module):
    """features (B, F) float32 -> probabilities of class 1 (B,): sigmoid(features . w + b)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())  # (1, F)
        self.register_buffer("bias", bias.detach().clone())  # (1,)

    @classmethod
    def from_model(cls, model: LogisticRegression) -> Probabilities:
        """The model's forward pass alone, on the CPU: the same folded weights its `logits` uses."""
        with torch.no_grad():
            return cls(*model.cpu().folded_weights()).eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(F.linear(features, self.weight, self.bias)).squeeze(-1)


def to_onnx(model: LogisticRegression, path: str | os.PathLike) -> Path:
    """Write an ONNX model: input `features` (batch, F) float32, output `probability` (batch,); any batch size."""
    try:  # what torch.onnx.export(dynamo=True) imports: the `export` extra
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"format=onnx needs the onnx and onnxscript packages ({error.name} is not installed): "
            "pip install 'logreg[export]', or export with format=torchscript, which needs nothing more"
        ) from error
    example = torch.zeros(2, model.hparams.n_features)  # (batch, F)
    torch.onnx.export(
        Probabilities.from_model(model), (example,), path,
        input_names=["features"], output_names=["probability"],
        dynamic_shapes={"features": {0: torch.export.Dim("batch")}},  # any number of rows
        external_data=False,  # one self-contained file: the weights are tiny
        dynamo=True, verbose=False,
    )
    return Path(path)


def to_torchscript(model: LogisticRegression, path: str | os.PathLike) -> Path:
    """Write a TorchScript model for `torch.jit.load`: features (batch, F) -> probabilities (batch,)."""
    torch.jit.save(torch.jit.script(Probabilities.from_model(model)), str(path))
    return Path(path)


EXPORTERS = {"onnx": (to_onnx, ".onnx"), "torchscript": (to_torchscript, ".pt")}  # format -> (writer, file suffix)
