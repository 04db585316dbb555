"""Making a trained network fast for inference on the CPU or GPU, and exporting it to ONNX.

Nothing here changes what a network computes beyond floating-point rounding, except ``precision="bf16"``,
which trades a little accuracy (measured in BENCHMARKS.md) for speed on CPUs with AMX / AVX-512 BF16.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import itertools
import logging
import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from platformdirs import user_cache_dir
from torch import nn

from pixelsleuth.errors import UsageError

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
Runtime = Literal["torch", "onnxruntime"]
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime")


def _folded_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
    return folded


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode network with each BatchNorm2d folded into the convolution before it.

    Pairs are found the way ResNet-style code names them: attributes ``convN`` / ``bnN`` of one module,
    and consecutive (Conv2d, BatchNorm2d) children of an ``nn.Sequential``. Folded norms become
    ``nn.Identity``; the outputs are equal up to float rounding.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
        >>> x = torch.randn(1, 3, 8, 8)
        >>> bool(torch.allclose(fold_batchnorm(net)(x), net(x), atol=1e-5))
        True
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (conv_name, conv), (norm_name, norm) in itertools.pairwise(children):
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    setattr(module, conv_name, _folded_conv(conv, norm))
                    setattr(module, norm_name, nn.Identity())
            continue
        for name, norm in list(module.named_children()):
            if not (isinstance(norm, nn.BatchNorm2d) and name.startswith("bn")):
                continue
            conv = getattr(module, "conv" + name[2:], None)
            if isinstance(conv, nn.Conv2d):
                setattr(module, "conv" + name[2:], _folded_conv(conv, norm))
                setattr(module, name, nn.Identity())
    return folded


def inference_model(model: nn.Module, *, channels_last: bool = True, fold: bool = True) -> nn.Module:
    """The network as it should run for inference: batch norm folded, channels-last memory format."""
    fast = fold_batchnorm(model) if fold else copy.deepcopy(model).eval()
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast.eval()


def export_onnx(
    model: nn.Module, path: str | Path, *, example_size: int = 256, opset: int = 18, dynamic: bool = True
) -> Path:
    """Write an eval-mode network as ONNX (batch, height and width dynamic unless `dynamic` is False).

    The exported graph takes the normalised N x 3 x H x W float input the detector's `model` takes and
    returns N logits.
    """
    path = Path(path)
    model = fold_batchnorm(model).cpu().eval()
    example = torch.randn(2, 3, example_size, example_size)
    dynamic_shapes = None
    if dynamic:
        # Height and width are declared even: NPR crops odd sizes before the network sees them.
        half_height, half_width = torch.export.Dim("half_height"), torch.export.Dim("half_width")
        dynamic_shapes = ({0: torch.export.Dim("batch"), 2: 2 * half_height, 3: 2 * half_width},)
    # The exporter narrates its steps on stdout, which would corrupt `scan --json` output.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", which is intended
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["images"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                dynamo=True,
                # One self-contained file: weights written beside it would keep the name of the partial
                # file the cache renames, and two processes exporting at once left one such file behind.
                external_data=False,
            )
    finally:
        onnx_log.setLevel(level)
    return path


def state_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a network's parameters and buffers (names, shapes and bytes), for caching exports."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def default_onnx_cache() -> Path:
    return Path(user_cache_dir("pixelsleuth", appauthor=False)) / "onnx"


class OnnxRunner:
    """Runs a network with ONNX Runtime's CPU provider, exporting it once into a cache folder.

    The export (about 10 s for NPR) is cached under the fingerprint of the weights, so later runs with
    the same weights start at once.
    """

    def __init__(self, model: nn.Module, *, cache_dir: str | Path | None = None, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as error:
            raise UsageError(
                "the onnxruntime runtime needs the onnx extra: pip install 'pixelsleuth[onnx]'"
            ) from error
        cache = Path(cache_dir) if cache_dir is not None else default_onnx_cache()
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"{type(model).__name__}-{state_fingerprint(model)[:16]}.onnx"
        if not path.is_file():
            partial = path.with_suffix(f".{os.getpid()}.partial")
            export_onnx(model, partial)
            partial.replace(path)  # atomic: a killed export never leaves a broken cache entry
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {"images": batch.detach().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(logits).reshape(-1)
