"""export.py: ONNX and TorchScript files that map raw feature rows to the probabilities the LightningModule gives."""

import sys

import numpy as np
import pytest
import torch
import warm

from conftest import REPO, sampled
from logreg.checking import check_config
from logreg.checkpoints import model_from_checkpoint, read_checkpoint
from logreg.errors import ConfigError, OutputError
from logreg.export import export
from logreg.table import read_labeled_csv


@pytest.fixture
def trained(trained_once, module_tiny_csv):
    """A short run on the tiny CSV with standardization (so the scaler must be folded in): its last checkpoint, in
    this test's copy of the run folder (tmp_path/run; the module trains it once)."""
    run_dir = trained_once("data=csv", f"data.path={module_tiny_csv}", "data.standardize=true", "epochs=5")
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture
def export_checkpoint(compose):
    """What `python export.py ckpt_path=... format=fmt [output=...] *overrides` writes; its path."""

    def _export(ckpt_path, fmt: str, output=None, *overrides: str):
        cfg = compose(
            f"ckpt_path={ckpt_path}",
            f"format={fmt}",
            *([f"output={output}"] if output else []),
            *overrides,
            config_name="export",
        )
        cfg = check_config(cfg)
        return export(cfg)

    return _export


def run_exported(path, fmt: str, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exported file, run by its own runtime (onnxruntime, or torch.jit.load): features (N, F) -> (N,), (N,)."""
    if fmt == "onnx":
        import onnxruntime

        return tuple(onnxruntime.InferenceSession(str(path)).run(["probability", "prediction"], {"features": features}))
    probability, prediction = torch.jit.load(str(path))(torch.from_numpy(features))
    return probability.numpy(), prediction.numpy()


def lightning_probabilities(ckpt_path, features: np.ndarray) -> np.ndarray:
    model = model_from_checkpoint(read_checkpoint(ckpt_path))
    return model(torch.from_numpy(features)).detach().numpy()


@sampled("fmt", ["onnx", "torchscript"], every=2)
def test_exported_model_gives_the_lightning_models_probabilities(trained, export_checkpoint, tiny_csv, tmp_path, fmt):
    features = read_labeled_csv(tiny_csv).features  # all 200 rows: a batch size the export never saw

    path = export_checkpoint(trained, fmt, tmp_path / f"model.{fmt}")

    probs, predictions = run_exported(path, fmt, features)
    assert probs.shape == predictions.shape == (200,)
    np.testing.assert_allclose(probs, lightning_probabilities(trained, features), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(predictions, probs >= 0.5)


@sampled("fmt", ["torchscript", "onnx"], every=2)
def test_exported_lab05_model_gives_the_lightning_models_probabilities_on_the_lab_data(
    run, export_checkpoint, diabetes_csv, tmp_path, fmt
):
    run("experiment=lab05", run_dir=tmp_path / "run")
    features = read_labeled_csv(diabetes_csv).features  # (759, 8)

    path = export_checkpoint(tmp_path / "run/checkpoints/last.ckpt", fmt, tmp_path / f"model.{fmt}")

    expected = lightning_probabilities(tmp_path / "run/checkpoints/last.ckpt", features)
    np.testing.assert_allclose(run_exported(path, fmt, features)[0], expected, rtol=0, atol=1e-6)


def test_onnx_model_takes_features_of_any_batch_size_and_gives_probability(trained, export_checkpoint, tmp_path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(export_checkpoint(trained, "onnx", tmp_path / "model.onnx")))

    (features,), (probability, prediction) = session.get_inputs(), session.get_outputs()
    assert (features.name, features.shape, features.type) == ("features", ["batch", 3], "tensor(float)")
    assert (probability.name, probability.shape) == ("probability", ["batch"])
    assert (prediction.name, prediction.shape, prediction.type) == ("prediction", ["batch"], "tensor(int64)")


def test_an_unknown_format_is_refused_naming_the_formats(trained, export_checkpoint):
    with pytest.raises(ConfigError, match=r"format=tflite: expected onnx or torchscript"):
        export_checkpoint(trained, "tflite")


@sampled("fmt", ["torchscript", "onnx"], every=2)
def test_an_export_replaces_only_an_earlier_export_of_its_format_and_only_with_overwrite(
    trained, export_checkpoint, tmp_path, fmt
):
    path = export_checkpoint(trained, fmt, tmp_path / "model.out")

    with pytest.raises(OutputError, match=r"model\.out: exists; name a new file, or overwrite=true"):
        export_checkpoint(trained, fmt, path)
    assert export_checkpoint(trained, fmt, path, "overwrite=true") == path
    other = "torchscript" if fmt == "onnx" else "onnx"
    with pytest.raises(OutputError, match=r"exists and is not an earlier output of this kind"):
        export_checkpoint(trained, other, path, "overwrite=true")
    with pytest.raises(OutputError, match=r"is an input of this run"):
        export_checkpoint(trained, fmt, trained, "overwrite=true")


def test_onnx_without_the_export_extra_names_what_to_install(trained, export_checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what an install without the extra gives: ImportError

    with pytest.raises(ConfigError, match=r"onnxscript is not installed\): pip install 'logreg\[export\]'"):
        export_checkpoint(trained, "onnx")
    assert not trained.with_suffix(".onnx").exists()


@pytest.mark.slow
def test_export_py_writes_the_model_beside_its_checkpoint(trained, tmp_path):
    result = warm.run(
        [sys.executable, str(REPO / "export.py"), f"ckpt_path={trained}", "format=onnx"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"onnx model written to {trained.with_suffix('.onnx')}" in result.stdout
    assert trained.with_suffix(".onnx").is_file()
