"""Dataset discovery (ForenSynths, GenImage, manifests), streaming, and training augmentations."""

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pixelsleuth.errors import IntakeError
from pixelsleuth.train import datasets
from pixelsleuth.train.augment import (
    EvalTransform,
    TrainTransform,
    center_crop,
    jpeg_opencv,
    pad_to,
    random_crop,
)
from pixelsleuth.train.datasets import (
    BadLabelError,
    DatasetError,
    DatasetNotFoundError,
    EmptyDatasetError,
    ImageDataset,
    Sample,
    discover,
    format_label_counts,
    holdout_split,
    label_counts,
)

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "manifest.tsv"


def noise_image(seed: int, size: tuple[int, int] = (24, 24)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def put(path: Path, seed: int = 0, size: tuple[int, int] = (24, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise_image(seed, size)).save(path)
    return path


def relative(samples: list[Sample], root: Path) -> list[tuple[str, int, str, str | None]]:
    return [(s.path.relative_to(root).as_posix(), s.label, s.subset, s.generator) for s in samples]


# --- ForenSynths / CNNDetection ---------------------------------------------------------------------


def test_forensynths_with_and_without_class_level(tmp_path):
    root = tmp_path / "test"
    put(root / "progan" / "car" / "0_real" / "b.png")
    put(root / "progan" / "car" / "0_real" / "a.jpg")
    put(root / "progan" / "car" / "1_fake" / "a.png")
    put(root / "progan" / "airplane" / "1_fake" / "x.webp")
    put(root / "biggan" / "0_real" / "r.bmp")
    put(root / "biggan" / "1_fake" / "f.tiff")
    (root / "biggan" / "1_fake" / "notes.txt").write_text("not an image")
    put(root / "biggan" / "1_fake" / ".hidden.png")

    samples = discover(root)

    assert relative(samples, root) == [
        ("biggan/0_real/r.bmp", 0, "biggan", None),
        ("biggan/1_fake/f.tiff", 1, "biggan", None),
        ("progan/airplane/1_fake/x.webp", 1, "progan", "airplane"),
        ("progan/car/0_real/a.jpg", 0, "progan", "car"),
        ("progan/car/0_real/b.png", 0, "progan", "car"),
        ("progan/car/1_fake/a.png", 1, "progan", "car"),
    ]


def test_forensynths_training_split_layout_uses_class_as_subset(tmp_path):
    # CNNDetection's train/ folder is ROOT/<class>/0_real|1_fake.
    put(tmp_path / "train" / "horse" / "0_real" / "1.png")
    put(tmp_path / "train" / "horse" / "1_fake" / "1.png")
    put(tmp_path / "train" / "cat" / "1_fake" / "1.png")
    samples = discover(tmp_path / "train")
    assert [(s.subset, s.label) for s in samples] == [("cat", 1), ("horse", 0), ("horse", 1)]


def test_label_folders_directly_under_root_take_the_root_name(tmp_path):
    put(tmp_path / "deepfake" / "0_real" / "1.png")
    put(tmp_path / "deepfake" / "1_fake" / "1.png")
    assert {s.subset for s in discover(tmp_path / "deepfake")} == {"deepfake"}


def test_discovery_is_deterministic(tmp_path):
    for index in (5, 3, 9, 1):
        put(tmp_path / "set" / "0_real" / f"{index}.png", seed=index)
    first, second = discover(tmp_path), discover(tmp_path)
    assert first == second
    assert [s.path.name for s in first] == ["1.png", "3.png", "5.png", "9.png"]


# --- GenImage ---------------------------------------------------------------------------------------


@pytest.fixture
def genimage(tmp_path):
    root = tmp_path / "GenImage"
    put(root / "Midjourney" / "train" / "ai" / "m1.png")
    put(root / "Midjourney" / "train" / "nature" / "n1.JPEG")
    put(root / "Midjourney" / "val" / "ai" / "m2.png")
    put(root / "Midjourney" / "val" / "nature" / "n2.png")
    # The archives unpack with one more level: <generator>/imagenet_ai_0419_sdv4/<split>/...
    put(root / "Stable Diffusion V1.4" / "imagenet_ai_0419_sdv4" / "train" / "ai" / "s1.png")
    put(root / "Stable Diffusion V1.4" / "imagenet_ai_0419_sdv4" / "val" / "nature" / "s2.png")
    return root


def test_genimage_train_split(genimage):
    assert relative(discover(genimage), genimage) == [
        ("Midjourney/train/ai/m1.png", 1, "Midjourney", "Midjourney"),
        ("Midjourney/train/nature/n1.JPEG", 0, "Midjourney", "Midjourney"),
        (
            "Stable Diffusion V1.4/imagenet_ai_0419_sdv4/train/ai/s1.png",
            1,
            "Stable Diffusion V1.4",
            "Stable Diffusion V1.4",
        ),
    ]


def test_genimage_val_split_and_single_generator_root(genimage):
    val = discover(genimage, split="val")
    assert [(s.path.name, s.label, s.subset) for s in val] == [
        ("m2.png", 1, "Midjourney"),
        ("n2.png", 0, "Midjourney"),
        ("s2.png", 0, "Stable Diffusion V1.4"),
    ]
    single = discover(genimage / "Midjourney", split="val")
    assert {s.subset for s in single} == {"Midjourney"} and len(single) == 2


def test_genimage_missing_split_names_the_splits_there(genimage):
    with pytest.raises(EmptyDatasetError, match=r"split 'test'.*train, val"):
        discover(genimage, split="test")


# --- Manifests --------------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "data" / "imgs"
    return [put(folder / f"{index}.png", seed=index) for index in range(4)]


def write_manifest(path: Path, rows: list[dict], fmt: str) -> Path:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path
    separator = "\t" if fmt == "tsv" else ","
    keys = list(rows[0])
    lines = [separator.join(keys)] + [separator.join(str(row.get(key, "")) for key in keys) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_manifest_formats(images, fmt):
    folder = images[0].parent.parent
    rows = [
        {"path": "imgs/0.png", "label": "real", "generator": "", "subset": "set-a"},
        {"path": "imgs/1.png", "label": "1", "generator": "sdxl", "subset": "set-a"},
        {"path": str(images[2]), "label": "ai", "generator": "midjourney", "subset": ""},
        {"path": "imgs/3.png", "label": "nature", "generator": "", "subset": ""},
    ]
    manifest = write_manifest(folder / f"list.{fmt}", rows, fmt)
    samples = discover(manifest)
    assert [(s.path, s.label, s.subset, s.generator) for s in samples] == [
        (images[0], 0, "set-a", None),
        (images[1], 1, "set-a", "sdxl"),
        (images[2], 1, "midjourney", "midjourney"),
        (images[3], 0, "list", None),
    ]


def test_manifest_label_spellings_and_aliases(images):
    folder = images[0].parent.parent
    manifest = folder / "manifest.tsv"
    manifest.write_text(
        "relpath\tlabel\tgenerator_or_set\n"
        "imgs/0.png\t0\tkodak\nimgs/1.png\tFAKE\tsd\nimgs/2.png\tgenerated\tsd\nimgs/3.png\tmanip\tpscc\n"
    )
    samples = discover(manifest, skip_labels={"manip"})
    assert [(s.path.name, s.label, s.subset) for s in samples] == [
        ("0.png", 0, "kodak"),
        ("1.png", 1, "sd"),
        ("2.png", 1, "sd"),
    ]
    with pytest.raises(
        BadLabelError, match=r"manifest.tsv line 5: label 'manip' is neither real nor generated"
    ):
        discover(manifest)


def test_manifest_bad_label_and_missing_columns(images):
    folder = images[0].parent.parent
    bad = write_manifest(folder / "bad.jsonl", [{"path": "imgs/0.png", "label": 7}], "jsonl")
    with pytest.raises(BadLabelError, match="line 1"):
        discover(bad)
    no_label = write_manifest(folder / "nolabel.csv", [{"path": "imgs/0.png", "kind": "real"}], "csv")
    with pytest.raises(DatasetError, match="needs a 'path' and a 'label'"):
        discover(no_label)
    broken = folder / "broken.jsonl"
    broken.write_text('{"path": "imgs/0.png", "label": 0}\n{not json\n')
    with pytest.raises(DatasetError, match="line 2 is not valid JSON"):
        discover(broken)


def test_manifest_leaves_out_missing_files_with_a_warning(images, caplog):
    folder = images[0].parent.parent
    manifest = write_manifest(
        folder / "m.csv", [{"path": "imgs/0.png", "label": 0}, {"path": "imgs/gone.png", "label": 1}], "csv"
    )
    with caplog.at_level(logging.WARNING, logger="pixelsleuth.train.datasets"):
        samples = discover(manifest)
    assert [s.path for s in samples] == [images[0]]
    assert "1 file(s) listed" in caplog.text and "gone.png" in caplog.text


# --- Errors -----------------------------------------------------------------------------------------


def test_typed_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        discover(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(
        EmptyDatasetError, match=r"no images found under .*empty: expected ROOT/<subset>/<class>"
    ):
        discover(tmp_path / "empty")
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(DatasetError, match="not a manifest"):
        discover(tmp_path / "readme.md")
    assert DatasetNotFoundError("x").to_dict()["type"] == "dataset_not_found"


# --- Counts and splits ------------------------------------------------------------------------------


def test_label_counts_and_table():
    samples = [
        Sample(Path("a"), 0, "progan", None),
        Sample(Path("b"), 1, "progan", None),
        Sample(Path("c"), 1, "progan", None),
        Sample(Path("d"), 1, "biggan", None),
    ]
    counts = label_counts(samples)
    assert counts == {
        "biggan": {"real": 0, "fake": 1, "total": 1},
        "progan": {"real": 1, "fake": 2, "total": 3},
    }
    table = format_label_counts(counts, title="training images").splitlines()
    assert table[0] == "training images"
    assert table[-1].split() == ["total", "1", "3", "4"]


def test_holdout_split_is_stratified_and_seeded():
    samples = [Sample(Path(f"{i:02d}.png"), int(i < 10), "all", None) for i in range(30)]
    train, val = holdout_split(samples, 0.2, seed=3)
    assert holdout_split(samples, 0.2, seed=3) == (train, val)
    assert holdout_split(samples, 0.2, seed=4) != (train, val)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 30
    assert label_counts(val)["all"] == {"real": 4, "fake": 2, "total": 6}


# --- Streaming dataset ------------------------------------------------------------------------------


@pytest.fixture
def labelled(tmp_path):
    root = tmp_path / "set"
    for index in range(6):
        put(root / "0_real" / f"{index}.png", seed=index, size=(20, 28))
        put(root / "1_fake" / f"{index}.png", seed=100 + index, size=(20, 28))
    return discover(root)


def test_dataset_opens_files_only_when_indexed(labelled, monkeypatch):
    opened = []
    real_load = datasets.load_image

    def counting_load(path, *args, **kwargs):
        opened.append(Path(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_image", counting_load)
    dataset = ImageDataset(labelled)
    assert len(dataset) == 12 and opened == []
    image, label = dataset[7]
    assert opened == [labelled[7].path]
    assert label == labelled[7].label == 1
    assert image.dtype == torch.uint8 and tuple(image.shape) == (20, 28, 3)
    assert np.array_equal(image.numpy(), np.asarray(Image.open(labelled[7].path)))


def test_transform_gets_a_generator_per_seed_epoch_and_index(labelled):
    dataset = ImageDataset(labelled, TrainTransform(crop_size=16), seed=5)
    first = [dataset[i][0] for i in range(4)]
    assert all(torch.equal(a, dataset[i][0]) for i, a in enumerate(first))
    dataset.set_epoch(1)
    assert not all(torch.equal(a, dataset[i][0]) for i, a in enumerate(first))
    one_argument = ImageDataset(labelled, lambda image: image[:8, :8])
    assert tuple(one_argument[0][0].shape) == (8, 8, 3)


def test_dataloader_workers_do_not_change_the_batches(labelled):
    dataset = ImageDataset(labelled, TrainTransform(crop_size=16, jpeg_prob=0.5, blur_prob=0.5), seed=1)
    serial = [batch for batch, _ in DataLoader(dataset, batch_size=4)]
    parallel = [batch for batch, _ in DataLoader(dataset, batch_size=4, num_workers=1)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_unreadable_image_is_substituted_by_a_neighbour_of_the_same_label(labelled, caplog):
    broken = labelled[2]  # a real image
    broken.path.write_bytes(b"this is not a PNG")
    dataset = ImageDataset(labelled)
    with caplog.at_level(logging.WARNING, logger="pixelsleuth.train.datasets"):
        image, label = dataset[2]
        dataset[2]
    assert label == 0
    assert np.array_equal(image.numpy(), np.asarray(Image.open(labelled[3].path)))
    assert dataset.failures == {broken.path}
    assert caplog.text.count("skipping unreadable image") == 1
    with pytest.raises(IntakeError):
        ImageDataset(labelled, on_error="raise")[2]


def test_all_unreadable_of_a_label_is_an_error(tmp_path):
    put(tmp_path / "s" / "1_fake" / "ok.png")
    (tmp_path / "s" / "0_real").mkdir(parents=True)
    (tmp_path / "s" / "0_real" / "bad.png").write_bytes(b"junk")
    dataset = ImageDataset(discover(tmp_path))
    with pytest.raises(datasets.UnreadableImagesError, match="no readable real image"):
        dataset[0]


@pytest.mark.skipif(not SHARED_DEV.is_file(), reason="needs the shared development data set")
def test_shared_dev_manifest():
    samples = discover(SHARED_DEV, skip_labels={"manip"})
    counts = label_counts(samples)
    assert sum(row["real"] for row in counts.values()) == 96
    assert sum(row["fake"] for row in counts.values()) == 188
    assert counts["stable-diffusion-v1"]["fake"] == 143
    assert all(sample.path.is_file() for sample in samples)


# --- Augmentations ----------------------------------------------------------------------------------


def smooth_image(seed: int, size: int = 48, sigma: float = 0.7) -> np.ndarray:
    image = noise_image(seed, (size, size))
    return cv2.GaussianBlur(image, (0, 0), sigma)


def high_frequency_energy(image: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)).mean())


def test_train_transform_is_deterministic_for_a_seed():
    image = smooth_image(0)
    image.setflags(write=False)  # intake hands out read-only arrays
    transform = TrainTransform(crop_size=32, blur_prob=0.5, jpeg_prob=0.5)
    outputs = [transform(image, np.random.default_rng(seed)) for seed in range(6)]
    again = [transform(image, np.random.default_rng(seed)) for seed in range(6)]
    assert all(np.array_equal(a, b) for a, b in zip(outputs, again, strict=True))
    assert len({output.tobytes() for output in outputs}) == 6
    assert all(output.shape == (32, 32, 3) and output.dtype == np.uint8 for output in outputs)
    assert np.array_equal(image, smooth_image(0))


def test_crops_pad_small_images_and_keep_shapes():
    small = noise_image(1, (20, 40))
    assert pad_to(small, 32).shape == (32, 40, 3)
    assert np.array_equal(pad_to(small, 32)[:20], small)
    assert np.array_equal(pad_to(small, 32)[20], small[19])  # mirrored, edge repeated
    assert pad_to(noise_image(1, (1, 1)), 5).shape == (5, 5, 3)
    assert random_crop(small, 32, np.random.default_rng(0)).shape == (32, 32, 3)
    big = noise_image(2, (40, 60))
    assert np.array_equal(center_crop(big, 32), big[4:36, 14:46])
    assert np.array_equal(EvalTransform(32)(big), big[4:36, 14:46])
    crop = random_crop(big, 32, np.random.default_rng(7))
    found = [
        (top, left)
        for top in range(9)
        for left in range(29)
        if np.array_equal(big[top : top + 32, left : left + 32], crop)
    ]
    assert len(found) == 1


def test_probability_zero_changes_nothing_but_crop_and_flip():
    image = smooth_image(3, size=32)
    transform = TrainTransform(crop_size=32, flip=False, blur_prob=0.0, jpeg_prob=0.0)
    for seed in range(10):
        assert np.array_equal(transform(image, np.random.default_rng(seed)), image)
    flips = TrainTransform(crop_size=32, flip=True)
    results = [flips(image, np.random.default_rng(seed)) for seed in range(10)]
    assert {np.array_equal(r, image[:, ::-1]) for r in results} | {
        np.array_equal(r, image) for r in results
    } == {
        True,
        False,
    }
    assert all(np.array_equal(r, image) or np.array_equal(r, image[:, ::-1]) for r in results)


def test_blur_at_probability_one_smooths():
    image = smooth_image(4, size=32)
    transform = TrainTransform(crop_size=32, flip=False, blur_prob=1.0, blur_sigma=(1.0, 3.0))
    for seed in range(5):
        blurred = transform(image, np.random.default_rng(seed))
        assert high_frequency_energy(blurred) < 0.6 * high_frequency_energy(image)


@pytest.mark.parametrize("method", ["cv2", "pil"])
def test_jpeg_at_probability_one_recompresses(method):
    image = smooth_image(5, size=32, sigma=2.0)
    transform = TrainTransform(
        crop_size=32, flip=False, jpeg_prob=1.0, jpeg_quality=(30, 40), jpeg_methods=(method,)
    )
    for seed in range(3):
        output = transform(image, np.random.default_rng(seed))
        assert not np.array_equal(output, image)
        # Close to the original: compressed, not scrambled.
        assert np.abs(output.astype(int) - image.astype(int)).mean() < 20


def test_opencv_jpeg_matches_quality_ordering():
    image = smooth_image(6, size=32, sigma=2.0)
    errors = [np.abs(jpeg_opencv(image, q).astype(int) - image.astype(int)).mean() for q in (30, 70, 100)]
    assert errors[0] > errors[1] > errors[2]


def test_train_transform_refuses_unknown_jpeg_method():
    with pytest.raises(ValueError, match="jpeg_methods"):
        TrainTransform(crop_size=8, jpeg_methods=("libjpeg-turbo",))
