"""CPU cost of training a detector: images per second of one optimiser step, eager vs channels-last.

    python benchmarks/train_cost.py [--detector npr] [--crop 128] [--batch-size 32] [--steps 8]

Times full training steps (forward, BCE loss, backward, Adam step) on random batches for the
layouts `pixelsleuth train` could use, interleaved step by step so that a noisy machine slows all of
them alike, and prints the median images per second and the ratio to the plain (NCHW, float32)
baseline measured in the same run. `pixelsleuth train` uses channels-last float32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pixelsleuth.detectors import create

LAYOUTS = {  # name: (channels_last, bf16 autocast)
    "nchw-fp32 (baseline)": (False, False),
    "channels-last-fp32 (pixelsleuth train)": (True, False),
    "channels-last-bf16-autocast": (True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="npr")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.crop, args.crop, generator=generator)
    labels = torch.randint(0, 2, (args.batch_size,), generator=generator).float()
    runs = {}
    for name, (channels_last, _) in LAYOUTS.items():
        torch.manual_seed(0)
        model = create(args.detector).model.train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        runs[name] = (model, torch.optim.Adam(model.parameters(), 2e-4), [])
    for _ in range(args.steps + 1):  # the first step of each warms up and is dropped
        for name, (channels_last, bf16) in LAYOUTS.items():
            model, optimizer, times = runs[name]
            batch = images.contiguous(memory_format=torch.channels_last) if channels_last else images
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(batch).reshape(-1).float()
            torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
    print(
        f"{args.detector} training steps, batch {args.batch_size}, {args.crop} x {args.crop}, "
        f"{torch.get_num_threads()} threads, median of {args.steps}:"
    )
    baseline = None
    for name, (_, _, times) in runs.items():
        rate = args.batch_size / statistics.median(times[1:])
        baseline = baseline or rate
        print(f"  {name:42s} {rate:6.1f} img/s  {rate / baseline:5.2f}x")


if __name__ == "__main__":
    main()
