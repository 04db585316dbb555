"""NPR inference throughput at 256 x 256, batch 32, against plain eager PyTorch in the same run.

    python benchmarks/npr_inference.py [--rounds 7] [--batch 32] [--size 256] [--device cpu|cuda]

Variants, timed in alternating rounds (medians):
  eager         the baseline: NPRNet in eval mode under torch.no_grad(), NCHW float32
  pixelsleuth   what Detector.predict runs: batch norm folded into the convolutions, channels-last,
                torch.inference_mode(), float32
  jit-freeze    TorchScript trace + freeze of the folded channels-last network (oneDNN fusions)
  bf16          pixelsleuth's network under bfloat16 autocast (`precision="bf16"`: AMX on this CPU)
  onnxruntime   the network exported by `pixelsleuth export-onnx`, ONNX Runtime CPU provider
                (what `runtime="onnxruntime"` / `--runtime onnxruntime` runs)
Also measures the machine's float32 and bfloat16 GEMM rate (2048^3 matmul) and reports each variant's
achieved GFLOP/s (FLOPs counted with torch.utils.flop_counter) as a fraction of it, and the largest
difference of its probabilities from the baseline's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixelsleuth.detectors.npr import NPRNet
from pixelsleuth.detectors.runtime import export_onnx, inference_model


def gemm_gflops(dtype: torch.dtype, device: str, size: int = 2048, rounds: int = 7) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    times = []
    for _ in range(rounds):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def realistic_network(seed: int = 0) -> NPRNet:
    """Random weights with non-trivial batch-norm statistics, so folding is really exercised."""
    torch.manual_seed(seed)
    model = NPRNet().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime variant")
    args = parser.parse_args()
    device = args.device

    model = realistic_network().to(device)
    fast = inference_model(model)
    batch = torch.randn(args.batch, 3, args.size, args.size, device=device)
    batch_cl = batch.contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(batch[:1])
    gflop_per_image = counter.get_total_flops() / 1e9

    def eager() -> torch.Tensor:
        with torch.no_grad():
            return model(batch)

    def ours() -> torch.Tensor:
        with torch.inference_mode():
            return fast(batch_cl)

    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(fast, batch_cl[:2]))

    def jit_freeze() -> torch.Tensor:
        with torch.no_grad():
            return frozen(batch_cl)

    def bf16() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16):
            return fast(batch_cl).float()

    variants: dict[str, tuple[Callable[[], torch.Tensor], str]] = {
        "eager": (eager, "fp32"),
        "pixelsleuth": (ours, "fp32"),
        "jit-freeze": (jit_freeze, "fp32"),
        "bf16": (bf16, "bf16"),
    }
    if not args.no_onnx and device == "cpu":
        import onnxruntime

        path = Path(tempfile.mkdtemp()) / "npr.onnx"
        export_onnx(model.cpu(), path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"images": batch.cpu().numpy()}
        variants["onnxruntime"] = (lambda: torch.from_numpy(session.run(None, feed)[0]), "fp32")

    reference = torch.sigmoid(eager().float().reshape(-1)).cpu()
    times: dict[str, list[float]] = {name: [] for name in variants}
    deviation: dict[str, float] = {}
    for name, (run, _) in variants.items():  # warm-up, and the accuracy check
        deviation[name] = float((torch.sigmoid(run().float().reshape(-1)).cpu() - reference).abs().max())
    for _ in range(args.rounds):
        for name, (run, _) in variants.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)

    peak = {"fp32": gemm_gflops(torch.float32, device), "bf16": gemm_gflops(torch.bfloat16, device)}
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch} at {args.size}x{args.size}, {gflop_per_image:.3f} GFLOP per image"
    )
    print(f"GEMM rate (2048^3 matmul): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    base = args.batch / statistics.median(times["eager"])
    header = ("variant", "img/s", "x eager", "GFLOP/s", "of GEMM peak", "max |dp|")
    print(f"{header[0]:12s} {header[1]:>8s} {header[2]:>8s} {header[3]:>8s} {header[4]:>13s} {header[5]:>9s}")
    for name, (_, precision) in variants.items():
        rate = args.batch / statistics.median(times[name])
        achieved = rate * gflop_per_image
        print(
            f"{name:12s} {rate:8.2f} {rate / base:8.2f} {achieved:8.1f} "
            f"{achieved / peak[precision]:9.0%} ({precision}) {deviation[name]:9.1e}"
        )
    print(f"ratio pixelsleuth/eager: {args.batch / statistics.median(times['pixelsleuth']) / base:.2f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
