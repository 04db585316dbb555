"""The forge: pixelsleuth's own generated images, made by a zoo of small generators trained on real photos.

`families` holds the generator zoo (autoencoders, a VAE and GANs with every common up-sampler);
`build` writes labelled datasets from them, `manipulate` makes edits with pixel masks, `postprocess`
gives real and fake images one distribution of sizes and formats. Names resolve on first use (PEP 562),
so the command line does not import torch until a forge command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixelsleuth._lazy import lazy_exports

_EXPORTS = {
    "FAMILIES": "pixelsleuth.forge.families",
    "FamilySpec": "pixelsleuth.forge.families",
    "GeneratorFamily": "pixelsleuth.forge.families",
    "list_families": "pixelsleuth.forge.families",
    "load_family": "pixelsleuth.forge.families",
    "periodic_trace": "pixelsleuth.forge.families",
    "train_family": "pixelsleuth.forge.families",
    "untrained_family": "pixelsleuth.forge.families",
}

if TYPE_CHECKING:
    from pixelsleuth.forge.families import (
        FAMILIES,
        FamilySpec,
        GeneratorFamily,
        list_families,
        load_family,
        periodic_trace,
        train_family,
        untrained_family,
    )


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "GeneratorFamily",
    "list_families",
    "load_family",
    "periodic_trace",
    "train_family",
    "untrained_family",
]
