"""The torch modules of the generator zoo: convolutional autoencoders, a VAE and a small GAN generator.

Every network here is fully convolutional, so one set of weights runs at any size that is a multiple
of its down-sampling factor. The part that matters for forensics is the up-sampling step of each
decoder, because it is where real generators leave the traces detectors learn (Odena et al.,
"Deconvolution and Checkerboard Artifacts", Distill 2016; Tan et al., NPR, CVPR 2024): each decoder stage
is one `up_block` of the chosen kind, followed by a residual block of 3 x 3 convolutions.

Pixels enter and leave the networks as N x 3 x H x W floats in [-1, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

UPSAMPLERS = ("nearest", "bilinear", "bicubic", "transposed", "pixelshuffle")

# Channel widths per resolution, from full resolution down to the latent grid: index k is the width
# after k halvings. Small on purpose (the zoo trains on a CPU in about a minute per family).
STAGE_WIDTHS = (24, 48, 64, 64)
# Latent channels per down-sampling factor: the code keeps 2/3 of a number per pixel value at factor 2,
# 1/3 at factor 4 and 1/6 at factor 8, so larger factors blur more, as latent generators do.
LATENT_CHANNELS = {2: 8, 4: 16, 8: 32}


def up_block(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    """One x2 up-sampling step of `kind`, mapping `in_channels` to `out_channels`.

    ``nearest`` / ``bilinear`` / ``bicubic``: interpolation then a 3 x 3 convolution (the "resize-convolution"
    of Odena et al., used by Stable Diffusion's VAE decoder with ``nearest``); ``transposed``: a 4 x 4
    transposed convolution with stride 2 (DCGAN); ``pixelshuffle``: a 3 x 3 convolution to four times the
    channels, then a sub-pixel shuffle (ESPCN, Shi et al. 2016).

    Args:
        kind: one of `UPSAMPLERS`.
        in_channels: channels of the input.
        out_channels: channels of the output, which has twice the height and width.

    Returns:
        The module.

    Example:
        >>> block = up_block("pixelshuffle", 8, 4)
        >>> tuple(block(torch.zeros(1, 8, 5, 6)).shape)
        (1, 4, 10, 12)
    """
    if kind in ("nearest", "bilinear", "bicubic"):
        if kind == "nearest":
            resize = nn.Upsample(scale_factor=2, mode="nearest")
        else:
            resize = nn.Upsample(scale_factor=2, mode=kind, align_corners=False)
        return nn.Sequential(resize, nn.Conv2d(in_channels, out_channels, 3, padding=1))
    if kind == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(in_channels, out_channels * 4, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown up-sampler {kind!r}; expected one of {', '.join(UPSAMPLERS)}")


def _stages(factor: int) -> int:
    stages = round(math.log2(factor))
    if 2**stages != factor or not 1 <= stages <= len(STAGE_WIDTHS) - 1:
        raise ValueError(f"factor must be 2, 4 or 8, got {factor}")
    return stages


class ResidualBlock(nn.Module):
    """``x + conv(silu(conv(silu(x))))`` with the second convolution starting at zero.

    Each block starts as the identity, so a stack of them trains quickly from the first step (the idea of
    Goyal et al. 2017, who start each block's last batch-norm scale at zero).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(channels, channels, 3, padding=1)
        self.second = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.second.weight)
        nn.init.zeros_(self.second.bias)
        self.act = nn.SiLU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.second(self.act(self.first(self.act(features))))


class Encoder(nn.Module):
    """Strided 3 x 3 convolutions and residual blocks from pixels to a latent grid `factor` times smaller."""

    def __init__(self, factor: int, out_channels: int) -> None:
        super().__init__()
        stages = _stages(factor)
        layers: list[nn.Module] = [nn.Conv2d(3, STAGE_WIDTHS[0], 3, padding=1)]
        for level in range(stages):
            width_in, width_out = STAGE_WIDTHS[level], STAGE_WIDTHS[level + 1]
            layers += [nn.Conv2d(width_in, width_out, 3, stride=2, padding=1), ResidualBlock(width_out)]
        layers += [nn.SiLU(), nn.Conv2d(STAGE_WIDTHS[stages], out_channels, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


class Decoder(nn.Module):
    """From a latent grid back to pixels through `log2(factor)` up-sampling stages of one kind.

    Every stage is ``silu -> up_block -> residual block``, so each up-sampling step is followed by
    convolutions that can shape, but not remove, its pattern.
    """

    def __init__(self, factor: int, in_channels: int, upsampler: str) -> None:
        super().__init__()
        stages = _stages(factor)
        top = STAGE_WIDTHS[stages]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, top, 3, padding=1), ResidualBlock(top)]
        for level in range(stages, 0, -1):
            width_in, width_out = STAGE_WIDTHS[level], STAGE_WIDTHS[level - 1]
            layers += [nn.SiLU(), up_block(upsampler, width_in, width_out), ResidualBlock(width_out)]
        layers += [nn.SiLU(), nn.Conv2d(STAGE_WIDTHS[0], 3, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)


class ConvAutoencoder(nn.Module):
    """A deterministic autoencoder, ``decoder(encoder(x))``: AEROBLADE's view of a latent generator's decoder.

    Example:
        >>> model = ConvAutoencoder(factor=4, upsampler="nearest")
        >>> tuple(model(torch.zeros(2, 3, 16, 24)).shape)
        (2, 3, 16, 24)
    """

    def __init__(self, factor: int, upsampler: str) -> None:
        super().__init__()
        self.factor = factor
        self.latent_channels = LATENT_CHANNELS[factor]
        self.encoder = Encoder(factor, self.latent_channels)
        self.decoder = Decoder(factor, self.latent_channels, upsampler)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixels))


class ConvVAE(nn.Module):
    """A variational autoencoder with a KL-regularised latent (Kingma & Welling 2014), as in latent diffusion.

    The encoder predicts a mean and a log-variance per latent value; `forward` returns the reconstruction
    of the mean (what `reconstruct` uses), `decode` turns any latent, e.g. N(0, I) noise, into pixels.

    Example:
        >>> model = ConvVAE(factor=4, upsampler="nearest", latent_channels=4)
        >>> mean, log_variance = model.encode(torch.zeros(1, 3, 16, 16))
        >>> tuple(mean.shape), tuple(model.decode(mean).shape)
        ((1, 4, 4, 4), (1, 3, 16, 16))
    """

    def __init__(self, factor: int, upsampler: str, latent_channels: int = 4) -> None:
        super().__init__()
        self.factor = factor
        self.latent_channels = latent_channels
        self.encoder = Encoder(factor, 2 * latent_channels)
        self.decoder = Decoder(factor, latent_channels, upsampler)

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.encoder(pixels).chunk(2, dim=1)
        return mean, log_variance.clamp(-30.0, 20.0)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(pixels)[0])


class Generator(nn.Module):
    """A DCGAN generator on a spatial noise grid: each latent cell becomes a 16 x 16 pixel block.

    Four x2 up-sampling stages, each followed by batch norm and a leaky ReLU as in DCGAN (Radford et
    al. 2016), turn a ``noise_channels`` x g x g grid of N(0, 1) noise into a 16g x 16g image. Trained on
    g = 4 (64 x 64 patches); a larger grid gives a larger, texture-like image from the same weights
    (Jetchev et al., "Texture Synthesis with Spatial Generative Adversarial Networks", 2016). Samples are
    drawn in eval mode, with batch norm's running statistics, so one sample never depends on another.

    Example:
        >>> tuple(Generator("transposed")(torch.zeros(1, 32, 4, 4)).shape)
        (1, 3, 64, 64)
    """

    widths = (64, 64, 32, 16, 8)
    upscale = 16

    def __init__(self, upsampler: str, noise_channels: int = 32) -> None:
        super().__init__()
        self.noise_channels = noise_channels
        layers: list[nn.Module] = [
            nn.Conv2d(noise_channels, self.widths[0], 3, padding=1),
            nn.BatchNorm2d(self.widths[0]),
            nn.LeakyReLU(0.2),
        ]
        for width_in, width_out in zip(self.widths[:-1], self.widths[1:], strict=True):
            layers += [up_block(upsampler, width_in, width_out), nn.BatchNorm2d(width_out), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(self.widths[-1], 3, 3, padding=1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.layers(noise)


class Discriminator(nn.Module):
    """DCGAN's discriminator, fully convolutional: strided 4 x 4 convolutions, then the mean of a logit map.

    Spectral normalisation on every convolution (Miyato et al., ICLR 2018) keeps the short CPU training
    stable. Used only while training a `Generator`; it is not saved with the family.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [spectral_norm(nn.Conv2d(channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels = width
        layers.append(spectral_norm(nn.Conv2d(channels, 1, 3, padding=1)))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels).mean(dim=(1, 2, 3))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable values in `model`.

    Example:
        >>> count_parameters(nn.Conv2d(3, 8, 3))
        224
    """
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
