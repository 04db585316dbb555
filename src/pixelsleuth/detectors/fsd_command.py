"""Command-line entry points of the FSD detector: `fit-fsd` (real photos -> weights) and `attribute`.

Heavy imports (torch, scikit-learn) happen inside the commands.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.errors import PixelsleuthError

if TYPE_CHECKING:
    from pixelsleuth.detectors.fsd import FSDDetector

EXIT_USAGE = 2
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"})
MANIFEST_SUFFIXES = frozenset({".csv", ".tsv", ".jsonl"})


@dataclass(frozen=True)
class ImageEntry:
    """One image file to crop: its label (0 real, 1 generated), generator and the image it came from."""

    path: Path
    label: int
    generator: str | None
    group: str  # crops of one group never straddle a held-out fold (the manifest's `source`, else the path)


def manifest_sources(manifest: Path) -> dict[Path, str]:
    """The ``source`` column of a CSV / TSV / JSONL manifest by resolved path (empty when it has none).

    Crop manifests list several crops of one source image; grouping by it keeps them in one fold.
    """
    suffix = manifest.suffix.lower()
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in handle if line.strip()]
        else:
            rows = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    sources: dict[Path, str] = {}
    for row in rows:
        path_value = row.get("path") or row.get("relpath")
        if path_value and row.get("source"):
            path = Path(str(path_value)).expanduser()
            sources[path if path.is_absolute() else manifest.parent / path] = str(row["source"])
    return sources


def list_images(source: Path) -> list[ImageEntry]:
    """Every image of a manifest (labels as `discover` reads them) or, for a folder, every image under it
    (all taken as real photos), sorted by path.

    Example:
        >>> list_images(Path("no/such/folder"))
        Traceback (most recent call last):
        ...
        pixelsleuth.train.datasets.DatasetNotFoundError: no images at no/such/folder: ...
    """
    from pixelsleuth.train.datasets import DatasetNotFoundError, discover

    if not source.exists():
        raise DatasetNotFoundError(f"no images at {source}: the folder or manifest file does not exist")
    if source.is_file() and source.suffix.lower() in MANIFEST_SUFFIXES:
        groups = manifest_sources(source)
        return [
            ImageEntry(sample.path, sample.label, sample.generator, groups.get(sample.path, str(sample.path)))
            for sample in discover(source)
        ]
    paths = sorted(
        Path(folder) / name
        for folder, _, names in os.walk(source, followlinks=True)
        for name in names
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith(".")
    )
    return [ImageEntry(path, 0, None, str(path)) for path in paths]


@dataclass
class CropSet:
    """Crops cut from a list of images, with the group and generator of each, and what was skipped."""

    crops: list[np.ndarray]
    groups: list[str]
    generators: list[str | None]
    images: int  # files that gave at least one crop (a crop manifest lists several files per photo)
    skipped: Counter[str]


def limit_images(entries: list[ImageEntry], count: int | None, seed: int) -> list[ImageEntry]:
    """A seeded random choice of `count` entries, in their order (all of them when `count` is None).

    Example:
        >>> [e.group for e in limit_images([ImageEntry(Path(n), 0, None, n) for n in "abcd"], 2, 0)]
        ['a', 'c']
    """
    if count is None or len(entries) <= count:
        return entries
    chosen = np.sort(np.random.default_rng(seed).permutation(len(entries))[:count])
    return [entries[i] for i in chosen]


def collect_crops(entries: list[ImageEntry], *, crop: int, per_image: int, seed: int) -> CropSet:
    """Read the images and cut up to `per_image` random grid-aligned crops of `crop` pixels from each.

    Images smaller than the crop, and unreadable ones, are skipped and counted.
    """
    from pixelsleuth.detectors.fsd import sample_crops
    from pixelsleuth.intake import load_image

    rng = np.random.default_rng(seed)
    result = CropSet([], [], [], 0, Counter())
    for entry in entries:
        try:
            rgb = load_image(entry.path).rgb
        except PixelsleuthError as error:
            result.skipped[f"unreadable ({error.type})"] += 1
            continue
        pieces = sample_crops(rgb, crop, per_image, rng)
        if not pieces:
            result.skipped[f"smaller than {crop} x {crop}"] += 1
            continue
        result.images += 1
        result.crops += pieces
        result.groups += [entry.group] * len(pieces)
        result.generators += [entry.generator] * len(pieces)
    return result


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(EXIT_USAGE)


def fit_fsd_command(
    source: Annotated[
        Path, typer.Argument(help="Real photos: a manifest (its real rows are used) or a folder of photos.")
    ],
    output: Annotated[
        Path, typer.Argument(help="Weights to write (.safetensors); the model card goes beside.")
    ],
    also: Annotated[
        list[Path] | None,
        typer.Option("--also", help="More real photos (manifest or folder); repeat for several."),
    ] = None,
    crop: Annotated[int, typer.Option("--crop", min=32, help="Crop side in pixels.")] = 256,
    crops_per_image: Annotated[
        int, typer.Option("--crops-per-image", min=1, help="Random crops per photo larger than the crop.")
    ] = 4,
    max_images: Annotated[
        int | None, typer.Option("--max-images", min=1, help="Use at most this many photos per source.")
    ] = None,
    components: Annotated[int, typer.Option("--components", min=1, help="Gaussians in the mixture.")] = 8,
    pca: Annotated[int, typer.Option("--pca", min=1, help="Whitened principal components kept.")] = 48,
    channels: Annotated[
        str, typer.Option("--channels", help="rgb (each colour plane) or luma (a third of the cost).")
    ] = "rgb",
    scales: Annotated[str, typer.Option("--scales", help="Pyramid scales, comma-separated.")] = "1,2,4",
    supports: Annotated[
        str | None,
        typer.Option(
            "--supports",
            help="Prediction-error filter supports, comma-separated (default: all eight, see "
            "pixelsleuth.forensics.selfdescription.support_mask).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    attribution: Annotated[
        list[Path] | None,
        typer.Option(
            "--attribution",
            help="Manifest whose generated rows (generator column) train one density per generator; "
            "repeat for several (crops sharing a `source` count as one image).",
        ),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base", help="Keep these fsd weights' filters and real density; fit attribution only."
        ),
    ] = None,
    attribution_crops: Annotated[
        int, typer.Option("--attribution-crops", min=1, help="Random crops per generated image.")
    ] = 4,
    quantile: Annotated[
        float,
        typer.Option(
            "--reject-quantile",
            min=0.0,
            max=0.5,
            help="Attribution thresholds: this quantile of held-out in-class log-likelihoods.",
        ),
    ] = 0.05,
    min_images: Annotated[
        int, typer.Option("--min-images", min=2, help="Generators with fewer images are not modelled.")
    ] = 3,
) -> None:
    """Fit the FSD detector on real photos only (filters, descriptions, density), optionally with
    open-set attribution densities for the generators of a manifest.

    The densities of known generators are stored in the same safetensors file (``attribution.*`` keys);
    the model card records the data, this exact command and what the fit saw.
    """
    from pixelsleuth.detectors import create
    from pixelsleuth.detectors.fsd import (
        AttributionConfig,
        DensityConfig,
        FSDDetector,
        default_card,
        fit_attribution,
        fit_fsd,
    )
    from pixelsleuth.forensics.selfdescription import SUPPORT_NAMES, DescriptionConfig

    supports = supports or ",".join(SUPPORT_NAMES)
    sources = [source, *(also or [])]
    words = ["pixelsleuth", "fit-fsd", str(source), str(output)]
    for extra in also or []:
        words += ["--also", str(extra)]
    if base is not None:
        words += ["--base", str(base)]
    else:
        words += ["--crop", str(crop), "--crops-per-image", str(crops_per_image)]
        words += ["--max-images", str(max_images)] if max_images is not None else []
        words += ["--components", str(components), "--pca", str(pca), "--channels", channels]
        words += ["--scales", scales, "--supports", supports]
    words += ["--seed", str(seed)]
    for manifest in attribution or []:
        words += ["--attribution", str(manifest)]
    if attribution:
        words += ["--attribution-crops", str(attribution_crops)]
        words += ["--reject-quantile", f"{quantile:g}", "--min-images", str(min_images)]
    command = shlex.join(words)
    try:
        description = DescriptionConfig(
            scales=tuple(int(part) for part in scales.split(",")),
            supports=tuple(part.strip() for part in supports.split(",")),
            channels=channels,  # type: ignore[arg-type]
        )
    except ValueError as error:
        raise _fail(f"bad description options (--scales, --supports, --channels): {error}") from None
    if base is None and crop < description.min_side:
        raise _fail(f"--crop must be at least {description.min_side} pixels for these scales, got {crop}")
    try:
        if base is not None:
            detector = create("fsd", base)
            if not isinstance(detector, FSDDetector) or not detector.trained:
                raise _fail(f"{base} holds no trained fsd weights")
            card = detector.card
        else:
            per_source = {path: [e for e in list_images(path) if e.label == 0] for path in sources}
            by_source = {str(path): len(entries) for path, entries in per_source.items()}
            real_entries = [
                entry for entries in per_source.values() for entry in limit_images(entries, max_images, seed)
            ]
            real = collect_crops(real_entries, crop=crop, per_image=crops_per_image, seed=seed)
            if not real.crops:
                raise _fail(
                    f"no real photo of at least {crop} x {crop} pixels in {', '.join(map(str, sources))}"
                )
            typer.echo(
                f"{len(real.crops)} crops from {real.images} files of {len(set(real.groups))} real photos; "
                "fitting filters and density ..."
            )
            card = default_card()
            card.version = f"fsd-{output.stem}"
            listed = ", ".join(f"{name} ({count} real listed)" for name, count in by_source.items())
            card.training_data = (
                f"real photos only: {listed}; {real.images} files of {len(set(real.groups))} photos used, "
                f"{len(real.crops)} crops of {crop} x {crop}"
            )
            card.training_command = command
            fitted = fit_fsd(
                real.crops,
                real.groups,
                description=description,
                density=DensityConfig(pca_dims=pca, components=components, seed=seed),
                card=card,
            )
            detector = fitted.detector
            detector.card.extra["fit_data"] = {
                "sources": by_source,
                "files_used": real.images,
                "photos_used": len(set(real.groups)),
                "crops": len(real.crops),
                "crop": crop,
                "crops_per_image": crops_per_image,
                "skipped": dict(real.skipped),
            }
            report = fitted.report
            typer.echo(
                f"density: {pca} whitened components ({report.explained_variance:.1%} of the variance), "
                f"{components} Gaussians; held-out real photos: median -loglik "
                f"{report.heldout_nll_median:.1f}, "
                f"95th percentile {report.heldout_nll_p95:.1f}; took {sum(report.seconds.values()):.0f} s"
            )
        if attribution:
            fakes = [
                entry
                for manifest in attribution
                for entry in list_images(manifest)
                if entry.label == 1 and entry.generator
            ]
            generated = collect_crops(fakes, crop=crop, per_image=attribution_crops, seed=seed)
            if not generated.crops:
                raise _fail(f"no generated image with a generator name in {', '.join(map(str, attribution))}")
            config = AttributionConfig(min_images=min_images, quantile=quantile, seed=seed)
            detector, attribution_report = fit_attribution(
                detector, generated.crops, [str(g) for g in generated.generators], generated.groups, config
            )
            detector.card.extra["attribution"]["data"] = [str(manifest) for manifest in attribution]
            detector.card.extra["attribution"]["command"] = command
            typer.echo(
                f"attribution: {len(attribution_report.generators)} generators modelled, "
                f"{len(attribution_report.left_out)} with fewer than {min_images} images left out"
            )
            if base is not None:
                card.training_command = f"{card.training_command}\n{command}"
    except PixelsleuthError as error:
        raise _fail(error.message) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    detector.save(output)
    typer.echo(f"wrote {output} and its model card {card_path_for(output)}")


def attribute_command(
    image: Annotated[Path, typer.Argument(help="The image to attribute.")],
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            "-w",
            help="fsd weights fitted with `fit-fsd --attribution` (default: the shipped ones).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Open-set source attribution: the known generator whose density fits best, "camera photo" when the
    real-photo density does, or "unknown" when none fits well enough."""
    from pixelsleuth.detectors import create
    from pixelsleuth.intake import load_image

    if weights is None:
        from pixelsleuth.detectors.defaults import embedded_detectors

        shipped = [path for name, path in embedded_detectors() if name == "fsd"]
        if not shipped:
            raise _fail(
                "attribute needs fsd weights with attribution densities: pass --weights (see fit-fsd)"
            )
        weights = shipped[0]
    try:
        detector: FSDDetector = create("fsd", weights)  # type: ignore[assignment]
        result = detector.attribute(load_image(image).rgb)
    except PixelsleuthError as error:
        raise _fail(error.message) from None
    if as_json:
        typer.echo(json.dumps({"image": str(image), **result.to_dict()}, indent=2))
        return
    ranked = sorted(result.log_likelihoods.items(), key=lambda item: -item[1])
    if result.label == "unknown":
        typer.echo(
            f"{image}: unknown source (no known density fits: best {ranked[0][0]}, "
            f"{-result.margin:.1f} below its threshold)"
        )
    else:
        typer.echo(
            f"{image}: {result.label} (log-likelihood margin {result.margin:.1f} over the next candidate)"
        )
    for name, value in ranked[:5]:
        typer.echo(f"  {name:<28} {value:10.1f}   threshold {result.thresholds[name]:10.1f}")
