"""export.py: ONNX and TorchScript files that map raw feature rows to the probabilities the LightningModule gives."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO
from export import export
from logreg.checkpoints import load_checkpoint
from logreg.data import read_csv
from logreg.errors import ConfigError
from train import train


@pytest.fixture
def trained(compose, tiny_csv, tmp_path):
    """A short run on the tiny CSV with standardization (so the scaler must be folded in): its last checkpoint."""
    train(compose("data=csv", f"data.path={tiny_csv}", "data.standardize=true", "epochs=5", run_dir=tmp_path / "run"))
    return tmp_path / "run" / "checkpoints" / "last.ckpt"


def export_checkpoint(ckpt_path, fmt: str, output=None):
    """What `python export.py ckpt_path=... format=fmt [output=...]` writes; its path."""
    cfg = OmegaConf.load(REPO / "conf" / "export.yaml")
    cfg.merge_with({"ckpt_path": str(ckpt_path), "format": fmt, "output": None if output is None else str(output)})
    return export(cfg)


def run_exported(path, fmt: str, features: np.ndarray) -> np.ndarray:
    """The exported file, run by its own runtime (onnxruntime, or torch.jit.load): features (N, F) -> (N,)."""
    if fmt == "onnx":
        import onnxruntime

        return onnxruntime.InferenceSession(str(path)).run(["probability"], {"features": features})[0]
    return torch.jit.load(str(path))(torch.from_numpy(features)).numpy()


def lightning_probabilities(ckpt_path, features: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(ckpt_path)
    return model(torch.from_numpy(features)).detach().numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_gives_the_lightning_models_probabilities(trained, tiny_csv, tmp_path, fmt):
    features, _, _ = read_csv(tiny_csv)  # all 200 rows: a batch size the export never saw

    path = export_checkpoint(trained, fmt, tmp_path / f"model.{fmt}")

    probs = run_exported(path, fmt, features)
    assert probs.shape == (200,)
    np.testing.assert_allclose(probs, lightning_probabilities(trained, features), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_lab05_model_gives_the_lightning_models_probabilities_on_the_lab_data(
    compose, diabetes_csv, tmp_path, fmt
):
    train(compose("experiment=lab05", run_dir=tmp_path / "run"))
    features, _, _ = read_csv(diabetes_csv)  # (759, 8)

    path = export_checkpoint(tmp_path / "run/checkpoints/last.ckpt", fmt, tmp_path / f"model.{fmt}")

    expected = lightning_probabilities(tmp_path / "run/checkpoints/last.ckpt", features)
    np.testing.assert_allclose(run_exported(path, fmt, features), expected, rtol=0, atol=1e-6)


def test_onnx_model_takes_features_of_any_batch_size_and_gives_probability(trained, tmp_path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(export_checkpoint(trained, "onnx", tmp_path / "model.onnx")))

    (features,), (probability,) = session.get_inputs(), session.get_outputs()
    assert (features.name, features.shape, features.type) == ("features", ["batch", 3], "tensor(float)")
    assert (probability.name, probability.shape) == ("probability", ["batch"])


def test_an_unknown_format_is_refused_naming_the_formats(trained):
    with pytest.raises(ConfigError, match=r"format=tflite: expected one of onnx, torchscript"):
        export_checkpoint(trained, "tflite")


def test_onnx_without_the_export_extra_names_what_to_install(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what an install without the extra gives: ImportError

    with pytest.raises(ConfigError, match=r"onnxscript is not installed\): pip install 'logreg\[export\]'"):
        export_checkpoint(trained, "onnx")
    assert not trained.with_suffix(".onnx").exists()


@pytest.mark.slow
def test_export_py_writes_the_model_beside_its_checkpoint(trained, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "export.py"), f"ckpt_path={trained}", "format=onnx"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"onnx model written to {trained.with_suffix('.onnx')}" in result.stdout
    assert trained.with_suffix(".onnx").is_file()
