"""The pool's splits and crops: deterministic, grid-aware, and in the manifest layout evaluate reads."""

import csv
import json

import numpy as np
from PIL import Image

from pixelsleuth.bench.poolset import (
    SPLITS,
    PoolImage,
    grid_tiles,
    image_crops,
    per_generator_manifest,
    prepare_pool_crops,
    split_of,
    spread_crops,
)
from pixelsleuth.train.datasets import discover

COLUMNS = (
    "relpath label generator_or_set family repo commit repo_path sha256 width height format repo_license note"
)
HEADER = "\t".join(COLUMNS.split()) + "\n"


def _image(relpath: str, label: int, source: str, note: str = "", sha: str | None = None) -> PoolImage:
    return PoolImage(
        relpath, label, source, "gan" if label else "photo", note, sha or f"{hash(relpath):064x}"[-64:]
    )


def test_split_is_deterministic_and_keeps_scene_sets_whole():
    photos = [
        _image(f"real/instant-ngp-fox/{i}.jpg", 0, "instant-ngp-fox", sha=f"{i:064x}") for i in range(30)
    ]
    assert len({split_of(photo) for photo in photos}) == 1
    files = [_image(f"fake/g/{i}.png", 1, "g", sha=f"{i * 7919:064x}") for i in range(200)]
    counts = {split: sum(split_of(item) == split for item in files) for split in SPLITS}
    assert all(count > 20 for count in counts.values())
    assert [split_of(item) for item in files] == [split_of(item) for item in files]


def test_grids_are_cut_into_tiles_and_mosaics_left_out():
    rgb = np.zeros((600, 1800, 3), np.uint8)
    tiles = grid_tiles(rgb, 2, 6)
    assert len(tiles) == 12 and tiles[0].shape == (292, 292, 3)
    grid = _image("fake/g/a.png", 1, "g", note="grid 2x6")
    assert [crop.shape for crop in image_crops(rgb, grid, 256, 4)] == [(256, 256, 3)] * 4
    assert image_crops(rgb, _image("fake/g/b.png", 1, "g", note="mosaic"), 256, 4) == []


def test_spread_crops_are_aligned_and_distinct():
    rgb = np.arange(700 * 900 * 3, dtype=np.uint32).reshape(700, 900, 3).astype(np.uint8)
    crops = spread_crops(rgb, 256, 5)
    assert len(crops) == 5
    assert len({crop.tobytes() for crop in crops}) == 5
    assert spread_crops(rgb[:200], 256, 3) == []


def test_prepare_pool_crops_writes_manifests_evaluate_can_read(tmp_path):
    pool, manifest = tmp_path / "pool", tmp_path / "manifest.tsv"
    rows = []
    rng = np.random.default_rng(0)
    for index in range(12):
        for label, source in ((0, "photos"), (1, "gen")):
            relpath = f"{'fake' if label else 'real'}/{source}/{index}.png"
            (pool / relpath).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (300, 320, 3), dtype=np.uint8)).save(pool / relpath)
            sha = f"{index * 31 + label:064x}"
            fields = [relpath, "fake" if label else "real", source, "x", "r", "c", "p", sha, "320", "300"]
            rows.append("\t".join([*fields, "PNG", "MIT", ""]) + "\n")
    manifest.write_text(HEADER + "".join(rows))
    summary = prepare_pool_crops(pool, manifest, tmp_path / "crops", size=256, per_fake=2, per_real=1)
    assert sum(sum(counts.values()) for counts in summary["crops"].values()) == 12 * 2 + 12
    assert json.loads((tmp_path / "crops" / "summary.json").read_text()) == summary
    for variant in ("png", "jpeg90"):
        samples = [s for split in SPLITS for s in discover(tmp_path / "crops" / variant / f"{split}.csv")]
        assert len(samples) == 36
        with Image.open(samples[0].path) as crop:
            assert crop.size == (256, 256) and crop.format == ("PNG" if variant == "png" else "JPEG")
    with open(tmp_path / "crops" / "png" / "train.csv") as handle:
        header = next(csv.reader(handle))
    assert header == ["path", "label", "subset", "generator", "family", "source", "crop"]


def test_per_generator_manifest_pairs_every_generator_with_all_photos(tmp_path):
    split = tmp_path / "test.csv"
    rows = ["path,label,subset,generator,family,source,crop"]
    rows += [f"real/p{i}.png,real,photos,,photo,r{i},0" for i in range(3)]
    rows += [f"fake/a{i}.png,fake,a,a,gan,a{i},{i % 2}" for i in range(4)]
    rows += ["fake/b0.png,fake,b,b,vq,b0,0"]
    split.write_text("\n".join(rows) + "\n")
    out = per_generator_manifest(split, tmp_path / "by-generator.csv")
    with open(out) as handle:
        table = list(csv.DictReader(handle))
    assert {row["subset"] for row in table} == {"a", "b"}
    assert sum(row["subset"] == "a" and row["label"] == "fake" for row in table) == 2  # first crops only
    assert sum(row["subset"] == "b" and row["label"] == "real" for row in table) == 3
