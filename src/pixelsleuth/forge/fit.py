"""Training loops of the generator zoo: reconstruction (autoencoders, VAE) and adversarial (GAN).

Both loops run a fixed number of steps, so the same seed and the same step count give the same weights;
a wall-clock limit only stops a loop early on a slow machine, and the report says when it did. Random
crops come from a NumPy Generator and training noise from a torch Generator, both seeded; the caller
seeds the weight initialisation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixelsleuth.forge.nets import ConvVAE, Discriminator, Generator


@dataclass
class FitReport:
    """What one training run did.

    ``stopped_by`` is ``"steps"`` when the planned steps all ran and ``"time"`` when the wall-clock limit
    ended the run first (then the weights depend on the machine's speed).
    """

    planned_steps: int
    steps: int
    seconds: float
    stopped_by: str
    losses: list[float] = field(default_factory=list)  # the loss of every step

    @property
    def first_loss(self) -> float:
        return float(np.mean(self.losses[:10])) if self.losses else math.nan

    @property
    def last_loss(self) -> float:
        return float(np.mean(self.losses[-10:])) if self.losses else math.nan


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch using `threads` CPU threads (None: leave it), then restore the setting.

    One thread is the zoo's default: its results do not depend on the machine's core count, and on a
    shared machine it is faster than competing for cores (5 x on the reference machine, measured).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def random_crops(photos: Sequence[np.ndarray], rng: np.random.Generator, count: int, crop: int) -> np.ndarray:
    """`count` random `crop` x `crop` patches, each from a random photo, randomly mirrored left-right.

    Photos smaller than `crop` are reflected at their borders first.

    Args:
        photos: RGB uint8 arrays, H x W x 3, any sizes.
        rng: the source of every random choice.
        count: number of patches.
        crop: side of each patch.

    Returns:
        A count x crop x crop x 3 uint8 array.

    Example:
        >>> photo = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
        >>> random_crops([photo], np.random.default_rng(0), count=2, crop=8).shape
        (2, 8, 8, 3)
    """
    patches = np.empty((count, crop, crop, 3), np.uint8)
    for index in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        short_rows, short_cols = max(0, crop - photo.shape[0]), max(0, crop - photo.shape[1])
        if short_rows or short_cols:
            photo = np.pad(photo, ((0, short_rows), (0, short_cols), (0, 0)), mode="reflect")
        top = int(rng.integers(photo.shape[0] - crop + 1))
        left = int(rng.integers(photo.shape[1] - crop + 1))
        patch = photo[top : top + crop, left : left + crop]
        patches[index] = patch[:, ::-1] if rng.random() < 0.5 else patch
    return patches


def shrink(photo: np.ndarray, factor: int) -> np.ndarray:
    """`photo` reduced `factor` times by area averaging (at least 1 x 1).

    Example:
        >>> shrink(np.zeros((10, 7, 3), np.uint8), 2).shape
        (5, 3, 3)
    """
    height, width = photo.shape[:2]
    size = (max(1, width // factor), max(1, height // factor))
    return cv2.resize(np.ascontiguousarray(photo), size, interpolation=cv2.INTER_AREA)


def to_signed(patches: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [-1, 1] (the networks' pixel range)."""
    batch = torch.from_numpy(np.ascontiguousarray(patches)).permute(0, 3, 1, 2).float()
    return batch.div_(127.5).sub_(1.0)


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W float in [-1, 1] -> N x H x W x 3 uint8 (clipped, rounded to nearest)."""
    pixels = batch.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def gradient_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical pixel differences (keeps edges sharp)."""
    rows = (output.diff(dim=2) - target.diff(dim=2)).abs().mean()
    cols = (output.diff(dim=3) - target.diff(dim=3)).abs().mean()
    return (rows + cols) / 2


def cosine_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Learning rate at `step`: linear warm-up over `warmup` steps, then cosine decay to 0 at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def fit_reconstruction(
    model: nn.Module,
    photos: Sequence[np.ndarray],
    *,
    steps: int,
    seconds: float,
    seed: int,
    crop: int,
    batch_size: int = 16,
    learning_rate: float = 4e-3,
    gradient_weight: float = 0.5,
    kl_weight: float = 0.01,
) -> FitReport:
    """Train an autoencoder (or a `ConvVAE`) to reproduce random crops: L1 + gradient L1 (+ KL for a VAE).

    Args:
        model: a `ConvAutoencoder` or a `ConvVAE`; trained in place.
        photos: training photos, RGB uint8.
        steps: number of optimiser steps to run.
        seconds: wall-clock limit; the loop stops early if it is reached.
        seed: seeds the crops and the VAE's sampling noise.
        crop: side of the training crops.
        batch_size: crops per step.
        learning_rate: Adam's peak rate (warm-up, then cosine decay to 0 at `steps`).
        gradient_weight: weight of the gradient L1 term.
        kl_weight: weight of the VAE's KL term, per latent value (ignored for plain autoencoders).

    Returns:
        The `FitReport`; ``losses`` holds the reconstruction L1 of every step.

    Example:
        >>> from pixelsleuth.forge.nets import ConvAutoencoder
        >>> photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> report = fit_reconstruction(ConvAutoencoder(2, "nearest"), [photo], steps=2, seconds=60,
        ...                             seed=0, crop=16)
        >>> report.steps, report.stopped_by
        (2, 'steps')
    """
    rng = np.random.default_rng(seed)
    noise = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    variational = isinstance(model, ConvVAE)
    warmup = min(50, max(1, steps // 20))
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    stopped_by = "steps"
    for step in range(steps):
        if time.perf_counter() - start >= seconds:
            stopped_by = "time"
            break
        for group in optimiser.param_groups:
            group["lr"] = cosine_rate(step, steps, learning_rate, warmup)
        target = to_signed(random_crops(photos, rng, batch_size, crop))
        if variational:
            mean, log_variance = model.encode(target)
            latent = mean + torch.randn(mean.shape, generator=noise) * torch.exp(0.5 * log_variance)
            output = model.decode(latent)
            kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance).mean()
        else:
            output = model(target)
            kl = torch.zeros(())
        reconstruction = F.l1_loss(output, target)
        loss = reconstruction + gradient_weight * gradient_l1(output, target) + kl_weight * kl
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        # A guard against single huge updates, which the deeper (factor 8) networks are prone to.
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimiser.step()
        losses.append(float(reconstruction.detach()))
    model.eval()
    return FitReport(steps, len(losses), time.perf_counter() - start, stopped_by, losses)


def fit_adversarial(
    generator: Generator,
    photos: Sequence[np.ndarray],
    *,
    steps: int,
    seconds: float,
    seed: int,
    crop: int,
    batch_size: int = 16,
    learning_rate: float = 2e-4,
    downscale: int = 2,
) -> FitReport:
    """Train `generator` against a fresh `Discriminator` on random real crops (DCGAN recipe).

    Non-saturating logistic losses, Adam with betas (0.5, 0.999) for both networks, one discriminator
    step per generator step (Radford et al. 2016). The discriminator's weights are drawn from torch's
    global generator, so the caller seeds it; it is thrown away at the end.

    Args:
        generator: the `Generator`; trained in place.
        photos: training photos, RGB uint8.
        steps: number of (discriminator, generator) step pairs.
        seconds: wall-clock limit; the loop stops early if it is reached.
        seed: seeds the crops and the latent noise.
        crop: side of the real crops, a multiple of 16 (the generator's grid is ``crop // 16``).
        batch_size: real and generated images per step.
        learning_rate: Adam's rate for both networks.
        downscale: the photos are first reduced by this factor (area averaging), so that a 64-pixel
            patch holds parts of objects rather than flat texture, as in the downscaled sets real GANs
            learn from.

    Returns:
        The `FitReport`; ``losses`` holds the generator's loss of every step.

    Example:
        >>> photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        >>> fit_adversarial(Generator("nearest"), [photo], steps=1, seconds=60, seed=0, crop=32).steps
        1
    """
    rng = np.random.default_rng(seed)
    noise = torch.Generator().manual_seed(seed)
    if downscale > 1:
        photos = [shrink(photo, downscale) for photo in photos]
    discriminator = Discriminator()
    betas = (0.5, 0.999)
    optimise_d = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=betas)
    optimise_g = torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=betas)
    grid = crop // Generator.upscale
    generator.train()
    losses: list[float] = []
    start = time.perf_counter()
    stopped_by = "steps"
    for _ in range(steps):
        if time.perf_counter() - start >= seconds:
            stopped_by = "time"
            break
        real = to_signed(random_crops(photos, rng, batch_size, crop))
        latent = torch.randn((batch_size, generator.noise_channels, grid, grid), generator=noise)
        fake = generator(latent)
        d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        optimise_d.zero_grad(set_to_none=True)
        d_loss.backward()
        optimise_d.step()
        g_loss = F.softplus(-discriminator(fake)).mean()
        optimise_g.zero_grad(set_to_none=True)
        g_loss.backward()
        optimise_g.step()
        losses.append(float(g_loss.detach()))
    generator.eval()
    return FitReport(steps, len(losses), time.perf_counter() - start, stopped_by, losses)
