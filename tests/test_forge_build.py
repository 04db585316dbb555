"""The forge's dataset writer: manipulations and their masks, shared post-processing, splits, manifest,
determinism, the format-shortcut check and the command."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from imagegen import encode, photo_like_rgb
from pixelsleuth.forge.build import ForgeError, allocate, forge_dataset, split_by_photo
from pixelsleuth.forge.command import forge_command
from pixelsleuth.forge.families import untrained_family
from pixelsleuth.forge.manipulate import (
    REGION_KINDS,
    ManipulationError,
    ai_edit,
    changed_mask,
    copy_move,
    inpaint,
    random_region_mask,
    splice,
)
from pixelsleuth.forge.postprocess import PostProcess

CROP = 64


def textured(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like image with detail at several scales, so edits and compression behave as on photos."""
    rng = np.random.default_rng(seed)
    base = photo_like_rgb(width, height, seed).astype(np.float32)
    blobs = rng.normal(0, 30, (height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    blobs = np.asarray(Image.fromarray(np.clip(blobs + 128, 0, 255).astype(np.uint8)).resize((width, height)))
    return np.clip(base + blobs.astype(np.float32) - 128, 0, 255).astype(np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Twelve genuine-looking photos of different sizes, half JPEG, half PNG, one too small to crop."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for index in range(12):
        file_format = ("JPEG", "PNG")[index % 2]
        rgb = textured(80 + 9 * index, 72 + 5 * index, seed=index)
        where = folder / "sub" if index % 3 == 0 else folder
        (where / f"photo{index:02d}.{file_format.lower()}").write_bytes(encode(rgb, file_format, quality=92))
    (folder / "tiny.png").write_bytes(encode(textured(40, 30, seed=99), "PNG"))
    return folder


@dataclass(frozen=True)
class _Spec:
    name: str


class NearIdentityFamily:
    """A stand-in generator keeping the content, adding a faint period-2 pattern (a decoder-like trace)."""

    def __init__(self, name: str) -> None:
        self.spec = _Spec(name)

    def reconstruct(self, rgb: np.ndarray) -> np.ndarray:
        pattern = np.indices(rgb.shape[:2]).sum(axis=0) % 2 * 2 - 1
        return np.clip(rgb.astype(np.int16) + pattern[..., None], 0, 255).astype(np.uint8)

    def sample(self, rng: np.random.Generator, size: int) -> None:
        return None


class NoiseSamplerFamily:
    """A stand-in GAN: samples smooth random images, cannot reconstruct."""

    def __init__(self, name: str) -> None:
        self.spec = _Spec(name)

    def reconstruct(self, rgb: np.ndarray) -> None:
        return None

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


# Manipulations.

MANIPULATIONS = {
    "splice": lambda image, donor, rng: splice(image, donor, rng),
    "splice-feather": lambda image, donor, rng: splice(image, donor, rng, blend="feather"),
    "splice-poisson": lambda image, donor, rng: splice(image, donor, rng, blend="poisson"),
    "copy-move": lambda image, donor, rng: copy_move(image, rng),
    "inpaint-telea": lambda image, donor, rng: inpaint(image, rng, method="telea"),
    "inpaint-ns": lambda image, donor, rng: inpaint(image, rng, method="ns"),
    "ai-edit": lambda image, donor, rng: ai_edit(image, rng, untrained_family("ae-nearest-x2").reconstruct),
}


@pytest.mark.parametrize("name", list(MANIPULATIONS))
def test_mask_marks_exactly_the_changed_pixels(name: str) -> None:
    image, donor = textured(96, 80, seed=1), textured(70, 110, seed=2)
    before = image.copy()
    for seed in range(3):
        edited, mask = MANIPULATIONS[name](image, donor, np.random.default_rng(seed))
        assert edited.shape == image.shape and edited.dtype == np.uint8
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        outside, inside = mask == 0, mask == 255
        assert (edited[outside] == image[outside]).all(), "a pixel outside the mask changed"
        assert (edited[inside] != image[inside]).any(axis=-1).all(), "a masked pixel did not change"
        assert 0.003 < inside.mean() < 0.5
    assert (image == before).all(), "the input was modified"


def test_manipulations_are_deterministic_per_rng() -> None:
    image, donor = textured(64, 64, seed=3), textured(64, 64, seed=4)
    for name, manipulate in MANIPULATIONS.items():
        first = manipulate(image, donor, np.random.default_rng(7))
        again = manipulate(image, donor, np.random.default_rng(7))
        other = manipulate(image, donor, np.random.default_rng(8))
        assert all((a == b).all() for a, b in zip(first, again, strict=True)), name
        assert not (first[1] == other[1]).all(), name


@pytest.mark.parametrize("kind", REGION_KINDS)
def test_region_masks_cover_about_the_asked_area(kind: str) -> None:
    fractions = [
        np.count_nonzero(random_region_mask((120, 90), np.random.default_rng(seed), kind, area=(0.05, 0.15)))
        / (120 * 90)
        for seed in range(20)
    ]
    assert min(fractions) > 0.02 and max(fractions) < 0.25
    assert 0.06 < float(np.mean(fractions)) < 0.16


def test_copy_move_copies_content_from_the_same_image() -> None:
    # On an image of one colour per row band, every moved pixel must carry a colour the image has.
    image = np.repeat(np.repeat(np.arange(0, 240, 30, dtype=np.uint8)[:, None], 12, axis=0), 96, axis=1)
    image = np.stack([image, 255 - image, image // 2], axis=-1)
    edited, mask = copy_move(image, np.random.default_rng(5), rotate_deg=(0, 0), scale=(1, 1))
    colours = {tuple(pixel) for pixel in image.reshape(-1, 3)}
    moved = edited[mask == 255]
    assert len(moved) > 0
    assert all(tuple(pixel) in colours for pixel in moved[:: max(1, len(moved) // 200)])


def test_ai_edit_needs_a_family_that_reconstructs() -> None:
    gan = untrained_family("gan-nearest-x16")
    with pytest.raises(ManipulationError, match="cannot reconstruct"):
        ai_edit(textured(32, 32, seed=0), np.random.default_rng(0), gan.reconstruct)


def test_changed_mask_is_any_channel() -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 1, 2] = 1
    assert changed_mask(a, b).tolist() == [[0, 255], [0, 0]]


# Post-processing.


def test_postprocess_is_deterministic_and_matches_its_record() -> None:
    post = PostProcess()
    rgb = textured(CROP, CROP, seed=5)
    formats = set()
    for seed in range(24):
        first = post(rgb, np.random.default_rng(seed))
        assert first.data == post(rgb, np.random.default_rng(seed)).data
        record = first.record
        formats.add(record.format)
        with Image.open(io.BytesIO(first.data)) as decoded:
            assert decoded.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[record.format]
            assert decoded.size == record.output_size
            assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment"} & set(decoded.info)
            if record.format == "png":
                assert decoded.text == {}
        assert min(record.output_size) >= 0.6 * CROP and max(record.output_size) <= CROP
        mask = post.transform_mask(np.full((CROP, CROP), 255, np.uint8), record)
        assert mask.shape == record.output_size[::-1]
    assert formats == {"png", "jpeg", "webp"}


def test_postprocess_draw_does_not_depend_on_content() -> None:
    post = PostProcess()
    dark, bright = np.zeros((CROP, CROP, 3), np.uint8), np.full((CROP, CROP, 3), 250, np.uint8)
    for seed in range(10):
        assert (
            post(dark, np.random.default_rng(seed)).record == post(bright, np.random.default_rng(seed)).record
        )


# The dataset.


def forge(photos: Path, output: Path, seed: int = 0, **overrides: object):
    """A small forge with stand-in families (numpy only, fast); tests needing the zoo pass `families`."""
    settings: dict = {
        "families": [NearIdentityFamily("near-identity"), NoiseSamplerFamily("noise-gan")],
        "per_family": 10,
        "seed": seed,
        "crop": CROP,
        "manipulations_per_kind": 3,
    }
    settings.update(overrides)
    return forge_dataset(photos, output, **settings)


def manifest_rows(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


def test_forge_writes_the_layout_and_a_complete_manifest(photos: Path, tmp_path: Path) -> None:
    output = tmp_path / "forged"
    report = forge(photos, output)
    rows = manifest_rows(output)
    written = {path for path in tree(output) if path != "manifest.jsonl"}
    assert {row["path"] for row in rows} == written
    assert len(rows) == len(written) == report.files
    for row in rows:
        data = (output / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
        parts = row["path"].split("/")
        if parts[0] == "manipulated":
            assert row["label"] == {"images": "manip", "masks": "mask"}[parts[2]]
            assert parts[1] == row["kind"]
        else:
            assert parts[0] == row["split"] and parts[1] == row["generator"]
            assert row["label"] == {"0_real": "real", "1_fake": "fake"}[parts[2]]
        with Image.open(output / row["path"]) as image:
            assert image.size == (row["width"], row["height"])
        for key in ("split", "source_photo", "crop_box", "postprocess"):
            assert key in row
    assert {row["generator"] for row in rows if row["kind"] == "synthetic"} == {"noise-gan-synthetic"}
    assert {row["generator"] for row in rows if row["kind"] == "laundered"} == {"near-identity"}
    assert {row["kind"] for row in rows if row["label"] == "manip"} == set(MANIPULATIONS)
    assert "noise-gan cannot reconstruct, so it launders no photos" in report.notes
    assert [name for name, _ in report.skipped_photos] == ["tiny.png"]
    # every manipulated image names its mask, which is binary, the image's size, and not empty
    for row in rows:
        if row["label"] == "manip":
            with Image.open(output / row["mask"]) as mask_file:
                mask = np.asarray(mask_file)
            assert mask.shape == (row["height"], row["width"])
            assert set(np.unique(mask).tolist()) <= {0, 255} and mask.any()
    # the ForenSynths reader of the training code finds both labels in every family folder
    from pixelsleuth.train.datasets import discover

    samples = discover(output)
    assert {sample.subset for sample in samples} == {"train", "val", "test"}
    assert len(samples) == sum(1 for row in rows if row["label"] in ("real", "fake"))


def test_forge_splits_by_photo_and_never_pairs_within_a_folder(photos: Path, tmp_path: Path) -> None:
    output = tmp_path / "forged"
    report = forge(photos, output)
    members = [set(names) for names in report.splits.values()]
    assert all(members) and sum(map(len, members)) == 12
    assert not set.intersection(*members[:2]) and not members[0] & members[2] and not members[1] & members[2]
    split_of = {name: split for split, names in report.splits.items() for name in names}
    folders: dict[str, dict[str, set]] = {}
    for row in manifest_rows(output):
        for key in ("source_photo", "donor_photo"):
            if row.get(key):
                assert split_of[row[key]] == row["split"], f"{row['path']} uses a photo of another split"
        if row["kind"] in ("real", "laundered"):
            folders.setdefault(f"{row['split']}/{row['generator']}", {}).setdefault(row["label"], set())
            folders[f"{row['split']}/{row['generator']}"][row["label"]].add(row["source_photo"])
    for folder, labels in folders.items():
        if len(report.splits[folder.split("/")[0]]) > 1:
            assert not labels["real"] & labels.get("fake", set()), f"{folder} pairs a photo with itself"


def test_split_ignores_seed_and_names_and_allocates_every_split(photos: Path) -> None:
    from pixelsleuth.forge.build import find_photos

    found, _ = find_photos(photos, min_side=CROP)
    first = split_by_photo(found)
    assert split_by_photo(list(reversed(found))) == first
    assert [len(first[name]) for name in ("train", "val", "test")] == allocate(12, (0.8, 0.1, 0.1))
    assert allocate(5, (0.8, 0.1, 0.1)) == [3, 1, 1] and allocate(0, (0.5, 0.5)) == [0, 0]


def test_forge_is_byte_identical_for_a_seed_and_differs_across_seeds(photos: Path, tmp_path: Path) -> None:
    def zoo_forge(output: Path, seed: int) -> None:
        # the real zoo (untrained), so torch's part in laundering, sampling and AI edits is covered
        zoo = [untrained_family("ae-transposed-x2"), untrained_family("vae-nearest-x4")]
        forge(photos, output, seed, families=zoo, per_family=4, manipulations_per_kind=1)

    zoo_forge(tmp_path / "a", seed=3)
    zoo_forge(tmp_path / "b", seed=3)
    zoo_forge(tmp_path / "c", seed=4)
    first, second, third = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert first == second
    assert first["manifest.jsonl"] != third["manifest.jsonl"]
    shared = set(first) & set(third)
    assert sum(first[path] != third[path] for path in shared) > 0.9 * len(shared)


def test_adding_a_family_leaves_the_other_files_unchanged(photos: Path, tmp_path: Path) -> None:
    forge(photos, tmp_path / "one", families=[NearIdentityFamily("a")], manipulations_per_kind=0)
    forge(
        photos,
        tmp_path / "two",
        families=[NoiseSamplerFamily("b"), NearIdentityFamily("a")],
        manipulations_per_kind=0,
    )
    one_tree, two_tree = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert all(two_tree[path] == data for path, data in one_tree.items() if path != "manifest.jsonl")


def _auc(rows: list[dict], features: list[str]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    columns = {
        "bytes": lambda row: row["bytes"],
        "width": lambda row: row["width"],
        "height": lambda row: row["height"],
        "format": lambda row: [row["postprocess"]["format"] == name for name in ("png", "jpeg", "webp")],
    }
    features_of = [np.hstack([columns[name](row) for name in features]) for row in rows]
    x = np.asarray(features_of, np.float64)
    y = np.array([row["label"] == "fake" for row in rows])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds, scoring="roc_auc").mean())


def test_file_properties_do_not_give_the_label_away(photos: Path, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    # A generator that keeps the content: whatever separates real from fake here is the forge's doing.
    families = [NearIdentityFamily("near-identity"), NearIdentityFamily("near-identity-2")]
    forge(photos, tmp_path / "kept", families=families, per_family=40, manipulations_per_kind=0)
    rows = [row for row in manifest_rows(tmp_path / "kept") if row["label"] in ("real", "fake")]
    assert len(rows) == 160
    auc = _auc(rows, ["bytes", "width", "height", "format"])
    assert auc < 0.65, f"file size, dimensions and format separate real from fake: AUC {auc:.3f}"
    # What the forge chooses itself (dimensions, format) must say nothing whatever the generator does
    # to the content; file size also follows the content, so a generator that simplifies it (as an
    # untrained or briefly trained one does) makes smaller files: see the forge's documentation.
    auc = _auc(rows, ["width", "height", "format"])
    assert auc < 0.65, f"dimensions and format separate real from fake: AUC {auc:.3f}"


def test_forge_refuses_what_it_cannot_do(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(ForgeError, match="no photo folder"):
        forge(tmp_path / "missing", tmp_path / "out")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ForgeError, match="not an empty folder"):
        forge(photos, occupied)
    few = tmp_path / "few"
    few.mkdir()
    (few / "one.png").write_bytes(encode(textured(80, 80, seed=0), "PNG"))
    with pytest.raises(ForgeError, match="cannot be split by photo"):
        forge(few, tmp_path / "out")
    with pytest.raises(ForgeError, match="unknown manipulation"):
        forge(photos, tmp_path / "out", manipulation_kinds=["blur"])
    with pytest.raises(ForgeError, match="once"):
        forge(photos, tmp_path / "out", families=[untrained_family("ae-nearest-x2")] * 2)


# The command.


def test_forge_command_trains_saves_and_reuses_families(photos: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(forge_command)
    runner = CliRunner()
    models = tmp_path / "zoo"
    arguments = [
        "--families",
        "ae-nearest-x2",
        "--per-family",
        "4",
        "--train-steps",
        "1",
        "--crop",
        str(CROP),
    ]
    arguments += ["--manipulations", "1", "--models", str(models)]
    first = runner.invoke(app, [str(photos), str(tmp_path / "one"), *arguments])
    assert first.exit_code == 0, first.output
    assert (models / "ae-nearest-x2.safetensors").is_file()
    assert "training" in first.output and (tmp_path / "one" / "manifest.jsonl").is_file()
    second = runner.invoke(app, [str(photos), str(tmp_path / "two"), *arguments])
    assert second.exit_code == 0, second.output
    assert "reusing" in second.output
    assert tree(tmp_path / "one") == tree(tmp_path / "two")

    unknown = runner.invoke(app, [str(photos), str(tmp_path / "three"), "--families", "nope"])
    assert unknown.exit_code == 2 and "unknown generator family nope" in unknown.output
    occupied = runner.invoke(app, [str(photos), str(tmp_path / "one"), *arguments])
    assert occupied.exit_code == 2 and "not an empty folder" in occupied.output


def test_parallel_workers_write_the_same_bytes(photos: Path, tmp_path: Path) -> None:
    zoo = [untrained_family("ae-transposed-x2"), untrained_family("gan-nearest-x16")]
    serial = forge(photos, tmp_path / "serial", 5, families=zoo, per_family=4, manipulations_per_kind=0)
    parallel = forge(
        photos, tmp_path / "parallel", 5, families=zoo, per_family=4, manipulations_per_kind=0, workers=2
    )
    assert tree(tmp_path / "serial") == tree(tmp_path / "parallel")
    assert serial.counts == parallel.counts and serial.files == parallel.files
    with pytest.raises(ForgeError, match="workers"):
        forge(photos, tmp_path / "none", 5, families=zoo, per_family=4, workers=0)
