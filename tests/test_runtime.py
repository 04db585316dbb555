"""Inference speed-ups keep the detector's outputs: folding, channels-last, bf16 and ONNX export."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pixelsleuth.detectors import create
from pixelsleuth.detectors.npr import NPRNet
from pixelsleuth.detectors.runtime import fold_batchnorm, inference_model
from pixelsleuth.outputs.cli import app


def randomised_npr() -> NPRNet:
    torch.manual_seed(0)
    model = NPRNet().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def test_folding_removes_every_batchnorm_and_keeps_outputs():
    model = randomised_npr()
    fast = inference_model(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        got = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_fold_handles_convolutions_with_bias():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=True), torch.nn.BatchNorm2d(4)).eval()
    net[1].running_mean.fill_(0.3)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(net)(x), net(x), atol=1e-5, rtol=1e-5)


def test_fast_copy_follows_weight_updates():
    detector = create("npr")
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    before = detector.predict([image])
    with torch.no_grad():
        detector.model.fc1.bias.add_(3.0)  # in place, as an optimiser step would
    after = detector.predict([image])
    assert after[0] > before[0]
    with torch.no_grad():
        direct = torch.sigmoid(detector.logits(detector.to_tensor([image])))
    assert after[0] == pytest.approx(float(direct[0]), abs=1e-5)


def test_bf16_stays_close_to_fp32(tmp_path):
    detector = create("npr")
    detector.model.load_state_dict(randomised_npr().state_dict())
    weights = tmp_path / "w.safetensors"
    detector.save(weights)
    images = [np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8) for i in range(4)]
    fp32 = create("npr", weights).predict(images)
    bf16 = create("npr", weights, precision="bf16").predict(images)
    assert np.max(np.abs(fp32 - bf16)) < 0.05


def test_unknown_precision_is_refused():
    with pytest.raises(Exception, match="precision must be one of"):
        create("npr", precision="fp8")


def test_export_onnx_matches_torch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    detector = create("npr")
    detector.model.load_state_dict(randomised_npr().state_dict())
    weights = tmp_path / "w.safetensors"
    detector.save(weights)
    out = tmp_path / "npr.onnx"
    result = CliRunner().invoke(app, ["export-onnx", str(out), "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "npr.json").is_file()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(2).integers(0, 256, (70, 100, 3), dtype=np.uint8)  # not the export size
    batch = detector.to_tensor([image])
    logits = session.run(None, {"images": batch.numpy()})[0].reshape(-1)
    with torch.no_grad():
        expected = detector.logits(batch).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_export_onnx_refuses_untrained(tmp_path):
    result = CliRunner().invoke(app, ["export-onnx", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2


def test_onnxruntime_runtime_matches_torch_and_caches_its_export(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setattr("pixelsleuth.detectors.runtime.default_onnx_cache", lambda: tmp_path / "cache")
    detector = create("npr")
    detector.model.load_state_dict(randomised_npr().state_dict())
    weights = tmp_path / "w.safetensors"
    detector.save(weights)
    images = [np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8) for i in range(3)]
    expected = create("npr", weights).predict(images)
    fast = create("npr", weights, runtime="onnxruntime")
    np.testing.assert_allclose(fast.predict(images), expected, atol=1e-5)
    cached = list((tmp_path / "cache").glob("*.onnx"))
    assert len(cached) == 1
    assert list((tmp_path / "cache").iterdir()) == cached  # self-contained: no weights file beside it
    again = create("npr", weights, runtime="onnxruntime")
    np.testing.assert_allclose(again.predict(images[:1]), expected[:1], atol=1e-5)
    assert list((tmp_path / "cache").glob("*.onnx")) == cached


def test_onnxruntime_runtime_refuses_bf16():
    with pytest.raises(Exception, match="float32 on the CPU only"):
        create("npr", runtime="onnxruntime", precision="bf16")
