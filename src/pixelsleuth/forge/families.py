"""The generator zoo: small generative networks, trained here on real photos, whose outputs carry real traces.

Public training sets and published generator weights cannot be fetched where pixelsleuth is built, so the
forge makes its own generated images. Each *family* is one small network with one kind of up-sampling
(nearest, bilinear or bicubic resize-convolution, transposed convolution, pixel shuffle) at one factor:

* autoencoders and a VAE *launder* a real photo: `GeneratorFamily.reconstruct` keeps its content and
  adds only the decoder's traces (the idea behind AEROBLADE, Ricker et al., CVPR 2024, and DRCT,
  Chen et al., ICML 2024: a reconstruction is a "generated" twin of a real image);
* the VAE and the GANs also `sample` fully synthetic images from noise.

Training runs a fixed number of steps (see `train_family`), so a zoo is reproducible from its seed.

Example:
    >>> import numpy as np
    >>> from pixelsleuth.forge import list_families, untrained_family
    >>> "ae-nearest-x2" in list_families()
    True
    >>> family = untrained_family("ae-nearest-x2", seed=0)
    >>> family.reconstruct(np.zeros((33, 50, 3), np.uint8)).shape
    (33, 50, 3)
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.forge.fit import (
    FitReport,
    fit_adversarial,
    fit_reconstruction,
    to_signed,
    to_uint8,
    torch_threads,
)
from pixelsleuth.forge.nets import ConvAutoencoder, ConvVAE, Generator, count_parameters

CARD_FORMAT = "pixelsleuth.forge.family/1"


class ForgeError(PixelsleuthError):
    type = "forge_error"


class UnknownFamilyError(ForgeError, KeyError):
    type = "unknown_generator_family"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class FamilyWeightsNotFoundError(ForgeError, FileNotFoundError):
    type = "family_weights_not_found"

    def __str__(self) -> str:
        return self.message


class IncompatibleFamilyWeightsError(ForgeError):
    type = "incompatible_family_weights"


class NoTrainingPhotosError(ForgeError):
    type = "no_training_photos"


class ForgeSettingError(ForgeError, ValueError):
    """A training or sampling setting that cannot work (crop size, step count, ...)."""

    type = "forge_setting"


class NotAnRgbImageError(ForgeError, ValueError):
    type = "not_an_rgb_image"


@dataclass(frozen=True)
class FamilySpec:
    """What a family is: its kind of network, its up-sampler and its factor.

    Attributes:
        name: registry name, e.g. ``"ae-nearest-x2"``.
        kind: ``"autoencoder"``, ``"vae"``, ``"gan"`` or ``"diffusion"``.
        upsampler: ``"nearest"``, ``"bilinear"``, ``"bicubic"``, ``"transposed"`` or ``"pixelshuffle"``.
        factor: the latent grid's down-sampling (2, 4 or 8); for a GAN, its up-sampling from the noise
            grid to pixels (16: a 4 x 4 grid becomes 64 x 64 pixels).
        description: what the family is for, in a sentence.
    """

    name: str
    kind: str
    upsampler: str
    factor: int
    description: str


def _autoencoder(upsampler: str, factor: int, use: str) -> FamilySpec:
    return FamilySpec(
        f"ae-{upsampler}-x{factor}",
        "autoencoder",
        upsampler,
        factor,
        f"Convolutional autoencoder, latent grid 1/{factor}, decoder up-samples by {upsampler}; {use}",
    )


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        _autoencoder("nearest", 2, "the NPR trace in its purest form (nearest copies then a convolution)."),
        _autoencoder("bilinear", 2, "a smooth interpolation trace (GAN and super-resolution decoders)."),
        _autoencoder("bicubic", 2, "interpolation with overshoot, the smoothest resize-convolution."),
        _autoencoder("transposed", 2, "DCGAN-style transposed convolution, the checkerboard trace."),
        _autoencoder("pixelshuffle", 2, "sub-pixel convolution (ESPCN, many super-resolution nets)."),
        _autoencoder("nearest", 4, "a coarser latent, like a latent-diffusion decoder at two stages."),
        _autoencoder("transposed", 4, "two stacked transposed convolutions: a period-4 checkerboard."),
        _autoencoder("nearest", 8, "Stable Diffusion's decoder layout (latent 1/8, nearest + conv)."),
        _autoencoder("transposed", 8, "a 1/8 latent with transposed convolutions (older GAN decoders)."),
        FamilySpec(
            "vae-nearest-x4",
            "vae",
            "nearest",
            4,
            "KL-regularised VAE with a 4-channel latent at 1/4 (latent-diffusion style); reconstructs, "
            "and samples blurry texture from N(0, I) latents that still carries its decoder's trace.",
        ),
        FamilySpec(
            "gan-transposed-x16",
            "gan",
            "transposed",
            16,
            "DCGAN-like generator: 4 transposed-convolution stages from a 4 x 4 noise grid to 64 x 64, "
            "trained adversarially; samples only.",
        ),
        FamilySpec(
            "gan-nearest-x16",
            "gan",
            "nearest",
            16,
            "The same generator with nearest + conv stages (StyleGAN-like resize-convolution); samples only.",
        ),
    )
}

# Training steps per second of wall time: about half of what one CPU thread of the reference machine
# (2 cores shared with other work, torch 2.13, default crops and batch) measured when idle, so that a
# budget holds on a busy machine too. `train_family(seconds=S)` plans ``floor(S * rate)`` steps: the
# step count, not the speed of the machine at hand, decides the weights.
NOMINAL_STEPS_PER_SECOND: dict[str, float] = {
    "ae-nearest-x2": 3.5,
    "ae-bilinear-x2": 3.5,
    "ae-bicubic-x2": 2.0,
    "ae-transposed-x2": 3.5,
    "ae-pixelshuffle-x2": 3.5,
    "ae-nearest-x4": 3.0,
    "ae-transposed-x4": 3.5,
    "ae-nearest-x8": 2.5,
    "ae-transposed-x8": 3.0,
    "vae-nearest-x4": 3.2,
    "gan-transposed-x16": 3.0,
    "gan-nearest-x16": 2.5,
}

# The budget of each family in the documented zoo (docs/forge.md), in seconds; with the rates above it
# gives 350 to 450 steps per family (300 for the slow bicubic up-sampler).
DEFAULT_SECONDS: dict[str, float] = {
    "ae-nearest-x2": 110.0,
    "ae-bilinear-x2": 110.0,
    "ae-bicubic-x2": 150.0,
    "ae-transposed-x2": 110.0,
    "ae-pixelshuffle-x2": 110.0,
    "ae-nearest-x4": 120.0,
    "ae-transposed-x4": 100.0,
    "ae-nearest-x8": 140.0,
    "ae-transposed-x8": 120.0,
    "vae-nearest-x4": 125.0,
    "gan-transposed-x16": 150.0,
    "gan-nearest-x16": 160.0,
}

VAE_LATENT_CHANNELS = 4

# Training crop side per kind when `train_family` is not given one.
DEFAULT_CROP = {"autoencoder": 32, "vae": 32, "gan": 64}

# Adam's peak learning rate for reconstruction, per factor: the deeper factor-8 networks can collapse to
# a flat image at 4e-3 (measured: ae-nearest-x8, 350 steps, 11.5 dB) and train at 2e-3 (20.7 dB).
# GANs use DCGAN's 2e-4.
RECONSTRUCTION_LEARNING_RATE = {2: 4e-3, 4: 4e-3, 8: 2e-3}
ADVERSARIAL_LEARNING_RATE = 2e-4

_BUILDERS: dict[str, Callable[[FamilySpec], nn.Module]] = {
    "autoencoder": lambda spec: ConvAutoencoder(spec.factor, spec.upsampler),
    "vae": lambda spec: ConvVAE(spec.factor, spec.upsampler, latent_channels=VAE_LATENT_CHANNELS),
    "gan": lambda spec: Generator(spec.upsampler),
}


def list_families() -> list[str]:
    """Names of every family in the catalogue, sorted.

    Example:
        >>> len(list_families()) >= 10
        True
    """
    return sorted(FAMILIES)


def family_spec(name: str) -> FamilySpec:
    """The `FamilySpec` called `name`; a typed error naming the known families otherwise.

    Example:
        >>> family_spec("ae-transposed-x4").factor
        4
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(
            f"there is no generator family called {name!r}; known families: {', '.join(list_families())}"
        ) from None


def _build(spec: FamilySpec, seed: int) -> nn.Module:
    """The untrained network of `spec`, initialised from `seed` without touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _BUILDERS[spec.kind](spec).eval()


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        described = f"shape {rgb.shape} dtype {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb)
        raise NotAnRgbImageError(f"expected an H x W x 3 uint8 RGB image, got {described}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise NotAnRgbImageError(f"the image is empty ({rgb.shape[0]} x {rgb.shape[1]} pixels)")


def _tiles(length: int, tile: int, context: int) -> list[tuple[int, int, int, int]]:
    """Split ``range(length)`` into cores of `tile` with `context` on each side.

    With `length`, `tile` and `context` multiples of the factor, every start stays on the up-sampling grid.
    Returns ``(input_start, input_end, core_start, core_end)`` tuples.
    """
    spans = []
    for core_start in range(0, length, tile):
        core_end = min(length, core_start + tile)
        spans.append((max(0, core_start - context), min(length, core_end + context), core_start, core_end))
    return spans


class GeneratorFamily:
    """One trained (or untrained) network of the zoo, with what it needs to launder and to sample.

    Attributes:
        spec: the `FamilySpec`.
        model: the torch module (for a GAN, the generator only).
        trained_seconds: wall-clock seconds its training took (0 for untrained weights).
        record: the rest of its card: seed, steps, training data, losses.

    Example:
        >>> family = untrained_family("vae-nearest-x4")
        >>> family.sample(np.random.default_rng(0), 20).shape
        (20, 20, 3)
    """

    # Reflected border added before a reconstruction (then cropped), a multiple of every factor so the
    # up-sampling grid stays aligned with the image's top-left pixel.
    margin = 16
    # Overlap given to each tile of a large image so the network sees the context it would see whole.
    tile_context = 32

    def __init__(
        self,
        spec: FamilySpec,
        model: nn.Module,
        *,
        trained_seconds: float = 0.0,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.model = model.eval()
        self.trained_seconds = trained_seconds
        self.record: dict[str, Any] = dict(record or {})

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    def __repr__(self) -> str:
        steps = self.record.get("steps", 0)
        return f"GeneratorFamily({self.name!r}, parameters={self.parameters}, steps={steps})"

    @torch.inference_mode()
    def reconstruct(self, rgb: np.ndarray, *, tile: int = 512) -> np.ndarray | None:
        """Pass a real image through the autoencoder: same content, the decoder's up-sampling traces.

        The image is reflected by `margin` pixels (plus whatever makes each side a multiple of the
        factor), run in tiles of `tile` pixels with `tile_context` pixels of overlap, and cropped back.
        The up-sampling grid starts at the image's top-left pixel.

        Args:
            rgb: H x W x 3 uint8, any size; not modified.
            tile: largest side processed at once (bounds memory on large photos).

        Returns:
            An H x W x 3 uint8 array, or None for families that cannot reconstruct (GANs).

        Example:
            >>> family = untrained_family("ae-transposed-x8")
            >>> family.reconstruct(np.full((5, 9, 3), 200, np.uint8)).shape
            (5, 9, 3)
        """
        if self.spec.kind not in ("autoencoder", "vae"):
            return None
        _check_rgb(rgb)
        height, width = rgb.shape[:2]
        factor, margin = self.spec.factor, self.margin
        padded = np.pad(
            rgb,
            ((margin, margin + (-height) % factor), (margin, margin + (-width) % factor), (0, 0)),
            mode="reflect",
        )
        tile = max(factor, tile - tile % factor)
        rows = _tiles(padded.shape[0], tile, self.tile_context)
        cols = _tiles(padded.shape[1], tile, self.tile_context)
        output = np.empty_like(padded)
        for top, bottom, core_top, core_bottom in rows:
            for left, right, core_left, core_right in cols:
                patch = to_signed(padded[None, top:bottom, left:right])
                result = to_uint8(self.model(patch))[0]
                output[core_top:core_bottom, core_left:core_right] = result[
                    core_top - top : core_bottom - top, core_left - left : core_right - left
                ]
        return output[margin : margin + height, margin : margin + width]

    @torch.inference_mode()
    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray | None:
        """A fully synthetic `size` x `size` image decoded from N(0, I) noise drawn from `rng`.

        The VAE decodes a latent grid of ``ceil(size / factor)`` cells; a GAN's generator a noise grid of
        ``ceil(size / 16)`` cells (trained on 4 x 4: larger sizes give texture-like images). The result
        is cropped to `size` from the top-left, so the up-sampling grid starts at pixel (0, 0).

        Args:
            rng: where the noise comes from; the same state gives the same image.
            size: side of the square image, >= 1.

        Returns:
            A size x size x 3 uint8 array, or None for families that cannot sample (autoencoders).

        Example:
            >>> family = untrained_family("gan-nearest-x16")
            >>> family.sample(np.random.default_rng(1), 64).shape
            (64, 64, 3)
        """
        if self.spec.kind == "vae":
            channels, factor = self.model.latent_channels, self.spec.factor
        elif self.spec.kind == "gan":
            channels, factor = self.model.noise_channels, Generator.upscale
        else:
            return None
        if size < 1:
            raise ForgeSettingError(f"a sample needs a size of at least 1 pixel, got {size}")
        grid = math.ceil(size / factor)
        noise = torch.from_numpy(rng.standard_normal((1, channels, grid, grid), dtype=np.float32))
        decode = self.model.decode if self.spec.kind == "vae" else self.model
        return to_uint8(decode(noise))[0, :size, :size]

    def card(self) -> dict[str, Any]:
        """The JSON record saved beside the weights."""
        return {
            "format": CARD_FORMAT,
            "family": self.name,
            "spec": asdict(self.spec),
            "parameters": self.parameters,
            "trained_seconds": round(self.trained_seconds, 3),
            **{key: value for key, value in self.record.items() if key not in ("family", "spec")},
            "torch": torch.__version__,
        }

    def save(self, folder: Path) -> Path:
        """Write ``<folder>/<name>.safetensors`` and the card ``<folder>/<name>.json``.

        Args:
            folder: created if missing.

        Returns:
            The path of the weights file.

        Example:
            >>> path = untrained_family("ae-nearest-x2").save(tmp_path)  # doctest: +SKIP
            >>> load_family("ae-nearest-x2", tmp_path)  # doctest: +SKIP
            GeneratorFamily('ae-nearest-x2', parameters=72803, steps=0)
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / f"{self.name}.safetensors"
        state = {key: value.detach().contiguous() for key, value in self.model.state_dict().items()}
        save_file(state, str(weights), metadata={"family": self.name, "format": CARD_FORMAT})
        weights.with_suffix(".json").write_text(json.dumps(self.card(), indent=2) + "\n")
        return weights


def load_family(name: str, folder: Path) -> GeneratorFamily:
    """Load the family `name` saved by `GeneratorFamily.save` in `folder`.

    Args:
        name: a catalogue name.
        folder: holds ``<name>.safetensors`` and ``<name>.json``.

    Returns:
        The family, with the card's record and training time.

    Raises:
        UnknownFamilyError: `name` is not in the catalogue.
        FamilyWeightsNotFoundError: the weights file is missing.
        IncompatibleFamilyWeightsError: the weights do not fit the family's network.

    Example:
        >>> load_family("ae-nearest-x2", Path("zoo"))  # doctest: +SKIP
        GeneratorFamily('ae-nearest-x2', parameters=72803, steps=360)
    """
    spec = family_spec(name)
    weights = Path(folder) / f"{name}.safetensors"
    if not weights.is_file():
        raise FamilyWeightsNotFoundError(
            f"no weights for the generator family {name!r} in {folder} (expected {weights.name}); "
            "train and save it first"
        )
    card_path = weights.with_suffix(".json")
    card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.is_file() else {}
    saved_spec = card.get("spec")
    if saved_spec is not None and (
        saved_spec.get("kind"),
        saved_spec.get("upsampler"),
        saved_spec.get("factor"),
    ) != (
        spec.kind,
        spec.upsampler,
        spec.factor,
    ):
        raise IncompatibleFamilyWeightsError(
            f"{card_path} describes a {saved_spec.get('kind')} with {saved_spec.get('upsampler')} "
            f"x{saved_spec.get('factor')} up-sampling, not the catalogue's {name!r}"
        )
    model = _build(spec, seed=0)
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as exc:
        raise IncompatibleFamilyWeightsError(
            f"the weights in {weights} do not fit the {name} network: {str(exc).splitlines()[0]}"
        ) from None
    record = {key: value for key, value in card.items() if key not in ("format", "parameters", "torch")}
    trained_seconds = float(record.pop("trained_seconds", 0.0))
    return GeneratorFamily(spec, model.eval(), trained_seconds=trained_seconds, record=record)


def untrained_family(name: str, seed: int = 0) -> GeneratorFamily:
    """The family `name` with freshly initialised weights (seeded): pure up-sampling traces, no learning.

    Untrained decoders already leave their up-sampling pattern (the NPR paper's observation), so they
    are useful as a trace source and in tests; their reconstructions do not keep the content.

    Example:
        >>> untrained_family("ae-pixelshuffle-x2", seed=3).record["seed"]
        3
    """
    spec = family_spec(name)
    return GeneratorFamily(spec, _build(spec, seed), record={"seed": seed, "steps": 0})


def planned_steps(name: str, seconds: float) -> int:
    """The deterministic step budget of `seconds` of training: ``floor(seconds * nominal rate)``, >= 1.

    Example:
        >>> planned_steps("ae-nearest-x2", 10)
        35
    """
    # The small epsilon keeps e.g. 0.1 * 50 from flooring to 4 through float rounding.
    return max(1, math.floor(seconds * NOMINAL_STEPS_PER_SECOND[family_spec(name).name] + 1e-6))


def _rounded(value: float) -> float | None:
    """`value` to 5 decimals for a JSON card; None when there is none (no step ran)."""
    return round(value, 5) if math.isfinite(value) else None


def describe_photos(photos: Sequence[np.ndarray]) -> dict[str, Any]:
    """How many photos and pixels, and a SHA-256 of their shapes and pixels (identifies a training set).

    Example:
        >>> describe_photos([np.zeros((2, 3, 3), np.uint8)])["pixels"]
        6
    """
    digest = hashlib.sha256()
    for photo in photos:
        digest.update(repr(photo.shape).encode())
        digest.update(np.ascontiguousarray(photo).tobytes())
    pixels = sum(int(photo.shape[0] * photo.shape[1]) for photo in photos)
    return {"photos": len(photos), "pixels": pixels, "sha256": digest.hexdigest()}


def periodic_trace(rgb: np.ndarray, period: int, *, tile: int = 64) -> float:
    """How strongly an image's fine detail repeats every `period` pixels: the up-sampling trace as a number.

    An up-sampling layer of factor p makes each output pixel's relation to its neighbours depend on its
    position modulo p, so the size of the differences between neighbouring pixels is periodic. The power
    spectra of the absolute horizontal and vertical differences, averaged over `tile` x `tile` windows
    (Welch's method), then peak at the frequencies ``k / period``; the result is the highest of those
    peaks over the median power. This is the periodicity test of resampling forensics (Popescu & Farid
    2005; Kirchner 2008). On 128 x 128 crops, camera photos give about 5 at period 2 (JPEG's 8 x 8 blocks
    also peak at periods 2, 4 and 8, more so at 8); outputs of the zoo's decoders give tens to thousands.

    Args:
        rgb: H x W x 3 uint8, at least `tile` + 1 pixels on each side.
        period: the grid period to look for, dividing `tile` (2, 4, 8 or 16 for a tile of 64).
        tile: window side of the spectral average; larger windows separate a periodic trace from
            content better, and the ratio grows with the window, so compare numbers of one tile size.

    Returns:
        The peak-to-median power ratio, >= 0.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> noise = rng.integers(0, 256, (130, 130, 3), dtype=np.uint8)
        >>> periodic_trace(noise, 2) < 10
        True
        >>> blocky = noise[::2, ::2].repeat(2, axis=0).repeat(2, axis=1)
        >>> periodic_trace(blocky, 2) > 100
        True
    """
    _check_rgb(rgb)
    if period < 2 or tile % period:
        raise ForgeSettingError(f"the period must be >= 2 and divide the tile side {tile}, got {period}")
    if min(rgb.shape[:2]) <= tile:
        raise NotAnRgbImageError(f"the trace needs more than {tile} x {tile} pixels, got {rgb.shape[:2]}")
    grey = rgb.astype(np.float64).mean(axis=2)
    power = np.zeros((tile, tile))
    # Columns of horizontal differences repeat along x, rows of vertical ones along y.
    for energy in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0))):
        rows, cols = energy.shape[0] // tile, energy.shape[1] // tile
        windows = energy[: rows * tile, : cols * tile].reshape(rows, tile, cols, tile).swapaxes(1, 2)
        windows = windows - windows.mean(axis=(2, 3), keepdims=True)
        power += (np.abs(np.fft.fft2(windows)) ** 2).mean(axis=(0, 1))
    step = tile // period
    peaks = [power[i * step, j * step] for i in range(period) for j in range(period) if i or j]
    background = np.median(power.ravel()[1:])
    return float(max(peaks) / max(background, 1e-12))


def train_family(
    name: str,
    photos: Sequence[np.ndarray],
    *,
    seconds: float,
    seed: int = 0,
    crop: int | None = None,
    steps: int | None = None,
    batch_size: int = 16,
    threads: int | None = 1,
    data_note: str = "",
) -> GeneratorFamily:
    """Train the family `name` on random crops of `photos`.

    The step count decides the weights: ``steps`` if given, otherwise ``planned_steps(name, seconds)``
    (a fixed rate per family, measured on the reference machine). `seconds` is also a wall-clock limit:
    on a slower machine training stops early, and the card's ``stopped_by`` says ``"time"``. The same
    `seed`, photos, settings and step count give bit-identical weights on the same machine. Torch's
    global random state and thread count are left as they were.

    Autoencoders and the VAE learn L1 + gradient L1 reconstruction (+ a KL term) with Adam, warm-up and
    cosine decay; a GAN learns adversarially against a DCGAN discriminator.

    Args:
        name: a catalogue name (`list_families`).
        photos: real RGB uint8 photos, H x W x 3, any sizes.
        seconds: training time budget.
        seed: seeds the initial weights, the crops and the noise.
        crop: side of the training crops, a multiple of the factor (of 16 for a GAN); None: 32 for
            autoencoders and the VAE (many small crops train them fastest), 64 for a GAN.
        steps: exact number of steps, overriding the budget derived from `seconds`.
        batch_size: crops per step.
        threads: torch CPU threads while training (restored after); None keeps torch's setting.
        data_note: where the photos came from, for the card.

    Returns:
        The trained `GeneratorFamily`.

    Raises:
        UnknownFamilyError: `name` is not in the catalogue.
        NoTrainingPhotosError: `photos` is empty.
        ForgeSettingError: `crop`, `steps`, `batch_size` or `seconds` cannot work.

    Example:
        >>> photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        >>> family = train_family("ae-nearest-x2", [photo], seconds=30, steps=3, crop=16, batch_size=2)
        >>> family.record["steps"], family.record["stopped_by"]
        (3, 'steps')
    """
    spec = family_spec(name)
    if len(photos) == 0:
        raise NoTrainingPhotosError(f"training the generator family {name!r} needs at least one photo")
    for photo in photos:
        _check_rgb(photo)
    crop = DEFAULT_CROP[spec.kind] if crop is None else crop
    multiple = Generator.upscale if spec.kind == "gan" else spec.factor
    if crop < multiple or crop % multiple:
        raise ForgeSettingError(f"the crop side for {name!r} must be a multiple of {multiple}, got {crop}")
    if not seconds > 0:
        raise ForgeSettingError(f"the training time budget must be positive, got {seconds} seconds")
    planned = planned_steps(name, seconds) if steps is None else steps
    if planned < 1 or batch_size < 1:
        raise ForgeSettingError(
            f"training needs at least one step and one crop, got {planned} and {batch_size}"
        )
    if spec.kind == "gan":
        fit: Callable[..., FitReport] = fit_adversarial
        learning_rate = ADVERSARIAL_LEARNING_RATE
    else:
        fit = fit_reconstruction
        learning_rate = RECONSTRUCTION_LEARNING_RATE[spec.factor]
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch_threads(threads):
        torch.manual_seed(seed)
        model = _BUILDERS[spec.kind](spec)
        report = fit(
            model,
            photos,
            steps=planned,
            seconds=seconds,
            seed=seed,
            crop=crop,
            batch_size=batch_size,
            learning_rate=learning_rate,
        )
    elapsed = time.perf_counter() - start
    record = {
        "seed": seed,
        "steps": report.steps,
        "planned_steps": report.planned_steps,
        "stopped_by": report.stopped_by,
        "seconds_limit": None if math.isinf(seconds) else seconds,  # None: no time limit
        "crop": crop,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "threads": threads,
        "loss": "generator non-saturating" if spec.kind == "gan" else "L1 on [-1, 1] pixels",
        "first_loss": _rounded(report.first_loss),
        "last_loss": _rounded(report.last_loss),
        "data": {**describe_photos(photos), "note": data_note},
    }
    return GeneratorFamily(spec, model.eval(), trained_seconds=elapsed, record=record)
