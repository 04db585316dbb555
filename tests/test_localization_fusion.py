"""The fused localization answer: the card, the gate, the fit, the commands and the scan evidence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.bench.localization import SampleResult, analyse_sample, summarise
from pixelsleuth.bench.locset import LocalizationSample, discover_pairs, gather_samples, read_manifest
from pixelsleuth.errors import UsageError
from pixelsleuth.intake import load_image
from pixelsleuth.localization.evidence import localization_evidence
from pixelsleuth.localization.fit import fit_fusion, operating_threshold
from pixelsleuth.localization.fuse import LocalizationFusion, fuse_maps
from pixelsleuth.localization.record import ForensicMap, Region
from pixelsleuth.outputs.cli import app

runner = CliRunner()


def spliced_photo(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth JPEG-compressed scene with an uncompressed noisy square pasted in, and its mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:192, 0:256]
    scene = np.stack([rows * 0.8 + 20, cols * 0.6 + 30, (rows + cols) * 0.3 + 40], axis=-1)
    scene = np.clip(scene + rng.normal(0, 2, scene.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(scene).save(buffer, "JPEG", quality=60)
    image = np.asarray(Image.open(buffer).convert("RGB")).copy()
    mask = np.zeros(image.shape[:2], bool)
    mask[64:128, 96:176] = True
    image[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    return image, mask


def uniform_card(tmp_path: Path, methods: list[str]) -> Path:
    path = tmp_path / "card.json"
    LocalizationFusion.uniform(methods).save(path)
    return path


def square_map(score: float, shape: tuple[int, int] = (32, 32)) -> ForensicMap:
    heat = np.zeros(shape, np.float32)
    heat[8:16, 8:24] = 1.0
    return ForensicMap("ela", heat, score, "...")


def test_a_probability_below_the_operating_point_reports_no_region_whatever_the_map_shows():
    card = LocalizationFusion.uniform(["ela"])
    quiet = fuse_maps([square_map(0.1)], card, (32, 32))
    loud = fuse_maps([square_map(0.95)], card, (32, 32))
    assert not quiet.manipulated and not quiet.mask.any() and quiet.regions == []
    assert "No manipulated region" in quiet.reading
    assert loud.manipulated and loud.mask[8:16, 8:24].all() and not loud.mask[20:].any()
    assert loud.regions[0].methods == ("ela",)
    assert "x 8–24, y 8–16" in loud.reading


def test_a_raised_threshold_silences_a_region():
    card = LocalizationFusion.uniform(["ela"]).at_threshold(0.99)
    assert fuse_maps([square_map(0.95)], card, (32, 32)).regions == []


def test_cards_round_trip_and_bad_cards_are_refused_with_a_sentence(tmp_path):
    card = LocalizationFusion.uniform(["ela", "noise"])
    card.save(tmp_path / "card.json")
    assert LocalizationFusion.load(tmp_path / "card.json") == card
    with pytest.raises(UsageError, match="no localization fusion card"):
        LocalizationFusion.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(UsageError, match="not a localization fusion card"):
        LocalizationFusion.load(tmp_path / "other.json")
    record = json.loads((tmp_path / "card.json").read_text())
    record["pixel_weights"] = [1.0]
    (tmp_path / "short.json").write_text(json.dumps(record))
    with pytest.raises(UsageError, match="do not match its maps"):
        LocalizationFusion.load(tmp_path / "short.json")


def test_the_operating_point_flags_at_most_the_target_share_of_genuine_images():
    genuine = np.linspace(0.0, 0.99, 100)
    threshold = operating_threshold(genuine, 0.05)
    assert (genuine >= threshold).sum() <= 5
    assert (genuine >= threshold).sum() >= 4


def test_fit_fusion_learns_which_map_carries_the_signal():
    rng = np.random.default_rng(1)
    results = []
    for index in range(60):
        genuine = index % 2 == 0
        useful = rng.uniform(0, 0.3) if genuine else rng.uniform(0.7, 1.0)
        labels = np.zeros(40, bool) if genuine else np.arange(40) < 20
        pixels = np.stack([np.where(labels, 0.9, 0.1), rng.uniform(0, 1, 40)], axis=1).astype(np.float32)
        features = [useful, float(useful > 0.5), rng.uniform(0, 1), 0.0]
        results.append(SampleResult("x", "d", genuine, features=features, pixels=pixels, pixel_labels=labels))
    card = fit_fusion(results, ["useful", "noise"], target_fpr=0.02)
    assert abs(card.pixel_weights[0]) > 5 * abs(card.pixel_weights[1])
    assert card.image_weights[0] > abs(card.image_weights[2])
    assert card.target_fpr == 0.02


def test_fit_fusion_needs_both_kinds_of_image():
    only = [
        SampleResult(
            "x",
            "d",
            True,
            features=[0.0, 0.0],
            pixels=np.zeros((2, 1), np.float32),
            pixel_labels=np.zeros(2, bool),
        )
    ]
    with pytest.raises(UsageError, match="both manipulated images and genuine ones"):
        fit_fusion(only, ["ela"])


def write_set(folder: Path) -> None:
    """A small CASIA-like set: images/ beside masks/ (NAME_gt.png) and Au/ genuine images."""
    for sub in ("images", "masks", "Au"):
        (folder / sub).mkdir(parents=True)
    for seed in range(2):
        image, mask = spliced_photo(seed)
        Image.fromarray(image).save(folder / "images" / f"Tp_{seed}.png")
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(folder / "masks" / f"Tp_{seed}_gt.png")
        clean, _ = spliced_photo(seed + 10)
        clean[:] = np.asarray(Image.open(folder / "images" / f"Tp_{seed}.png"))[0, 0] + seed
        Image.fromarray(clean).save(folder / "Au" / f"Au_{seed}.png")


def test_folder_layouts_pair_images_with_their_masks(tmp_path):
    write_set(tmp_path / "casia")
    (tmp_path / "coverage" / "image").mkdir(parents=True)
    (tmp_path / "coverage" / "mask").mkdir(parents=True)
    for name in ("image/12t.tif", "mask/12forged.tif", "mask/12copy.tif"):
        Image.new("L", (8, 8)).save(tmp_path / "coverage" / name)
    samples = discover_pairs(tmp_path)
    manipulated = {sample.image.name: sample.mask.name for sample in samples if not sample.genuine}
    assert manipulated == {"Tp_0.png": "Tp_0_gt.png", "Tp_1.png": "Tp_1_gt.png", "12t.tif": "12forged.tif"}
    assert sorted(sample.image.name for sample in samples if sample.genuine) == ["Au_0.png", "Au_1.png"]
    with pytest.raises(UsageError, match="no image/mask pairs"):
        discover_pairs(tmp_path / "coverage" / "mask")


def test_the_manifest_split_keeps_an_original_with_its_forgeries(tmp_path):
    header = "relpath\tlabel\tdataset\tmanipulation\tpair\tnote\n"
    rows = [f"d/images/{n}.png\tmanipulated\td\tcopy-move\t\t\n" for n in range(8)]
    rows += [f"d/masks/{n}.png\tmask\td\tcopy-move\td/images/{n}.png\twhite\n" for n in range(8)]
    rows += ["d/pristine/a.png\tpristine\td\t\td/images/0.png;d/images/1.png\t\n"]
    (tmp_path / "manifest.tsv").write_text(header + "".join(rows))
    samples = read_manifest(tmp_path / "manifest.tsv", tmp_path)
    split = {sample.relpath: sample.split for sample in samples}
    assert sum(value == "heldout" for key, value in split.items() if "images" in key) >= 4
    if split["d/pristine/a.png"] == "heldout":
        assert "heldout" in (split["d/images/0.png"], split["d/images/1.png"])
    else:
        assert split["d/images/0.png"] == split["d/images/1.png"] == "train"
    assert read_manifest(tmp_path / "manifest.tsv", tmp_path) == samples


def test_evaluation_scores_each_map_and_the_fused_answer(tmp_path):
    write_set(tmp_path / "set")
    samples = gather_samples([tmp_path / "set"], [], "heldout")
    card = LocalizationFusion.uniform(["ela"])
    results = [analyse_sample(sample, card) for sample in samples]
    summary = summarise(results)
    methods = summary["datasets"]["set"]["methods"]
    assert methods["ela"]["auc"] > 0.9
    assert methods["fused-map"]["best_f1"] > 0.8
    assert summary["genuine"]["images"] == 2
    assert summary["genuine"]["methods"]["fused"]["with_region"] == 0.0
    assert methods["fused"]["image_auc"] == 1.0


def test_evaluate_localization_command_prints_the_table_and_writes_json(tmp_path):
    write_set(tmp_path / "set")
    result = runner.invoke(
        app,
        [
            "evaluate-localization",
            str(tmp_path / "set"),
            "--methods",
            "ela",
            "--json",
            str(tmp_path / "o.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| set | 2 | ela |" in result.stdout
    record = json.loads((tmp_path / "o.json").read_text())
    assert len(record["images"]) == 4
    bad = runner.invoke(app, ["evaluate-localization", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "not a folder" in bad.output


def test_localize_writes_mask_heatmap_and_overlay_at_the_image_size(tmp_path):
    image, mask = spliced_photo()
    Image.fromarray(image).save(tmp_path / "edited.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    card = uniform_card(tmp_path, ["ela"])
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "localize",
            str(tmp_path / "edited.png"),
            str(tmp_path / "broken.jpg"),
            "-o",
            str(out),
            "--fusion",
            str(card),
        ],
    )
    assert result.exit_code == 1  # one file failed, the other was localized
    assert "broken.jpg" in result.output
    written = np.asarray(Image.open(out / "edited.mask.png"))
    assert written.dtype == np.uint8 and written.shape == mask.shape
    assert set(np.unique(written)) <= {0, 255}
    inside, outside = (written[mask] == 255).mean(), (written[~mask] == 255).mean()
    assert inside > 0.8 and outside < 0.05
    for kind in ("heatmap", "overlay"):
        assert Image.open(out / f"edited.{kind}.png").size == (image.shape[1], image.shape[0])
    overlay = np.asarray(Image.open(out / "edited.overlay.png")).astype(int)
    assert overlay[mask][:, 0].mean() > overlay[~mask][:, 0].mean()  # red where manipulated
    record = json.loads((out / "edited.localization.json").read_text())
    assert record["manipulated"] and record["regions"][0]["methods"] == ["ela"]


def test_localize_without_a_card_says_how_to_get_one(tmp_path):
    result = runner.invoke(
        app, ["localize", "x.png", "-o", str(tmp_path), "--fusion", str(tmp_path / "no.json")]
    )
    assert result.exit_code == 2 and "fit-localization" in result.output


def test_scan_evidence_points_to_manipulated_only_with_a_region(tmp_path):
    image, _ = spliced_photo()
    Image.fromarray(image).save(tmp_path / "edited.png")
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    card = LocalizationFusion.uniform(["ela"])
    edited = localization_evidence(load_image(tmp_path / "edited.png"), card)[0]
    flat = localization_evidence(load_image(tmp_path / "flat.png"), card)[0]
    assert edited.points_to == "manipulated" and edited.strength > 0.5
    assert edited.data["regions"] and edited.source == "localization"
    assert flat.points_to == "none" and flat.strength == 0.0 and flat.data["regions"] == []


def test_samples_of_every_kind_are_gathered_with_a_limit(tmp_path):
    write_set(tmp_path / "set")
    samples = gather_samples([tmp_path / "set"], [], "all", limit=1)
    assert sorted(sample.genuine for sample in samples) == [False, True, True]
    assert isinstance(samples[0], LocalizationSample)
    with pytest.raises(UsageError, match="--split"):
        gather_samples([tmp_path / "set"], [], "test")


def test_the_map_cache_returns_what_was_computed_and_notices_nothing_else(tmp_path):
    from pixelsleuth.bench.localization import MapCache

    cache = MapCache(tmp_path / "cache")
    heat = np.zeros((16, 16), np.float32)
    heat[2:6, 3:9] = 0.75
    item = ForensicMap(
        "ela",
        heat,
        0.6,
        "reading",
        fuse_maps([square_map(0.9)], LocalizationFusion.uniform(["ela"]), (32, 32)).regions[0].region,
    )
    assert cache.get("ab" * 32, "ela") is None
    cache.put("ab" * 32, item)
    back = cache.get("ab" * 32, "ela")
    assert back is not None and np.allclose(back.map, heat) and back.score == 0.6
    assert back.region == item.region
    assert cache.get("cd" * 32, "ela") is None and cache.get("ab" * 32, "noise") is None


def test_evaluation_with_a_cache_gives_the_same_numbers(tmp_path):
    write_set(tmp_path / "set")
    samples = gather_samples([tmp_path / "set"], [], "all")
    card = LocalizationFusion.uniform(["ela", "noise"])
    from pixelsleuth.bench.localization import MapCache

    first = [analyse_sample(sample, card, cache=MapCache(tmp_path / "c")) for sample in samples]
    again = [analyse_sample(sample, card, cache=MapCache(tmp_path / "c")) for sample in samples]
    assert len(list((tmp_path / "c").glob("*.npz"))) == 2 * len(samples)
    for one, two in zip(first, again, strict=True):
        assert one.scores == two.scores
        for method in one.metrics:
            assert one.metrics[method]["auc"] == pytest.approx(two.metrics[method]["auc"], abs=1e-3)


def test_every_registered_map_runs_or_refuses_with_a_sentence():
    from pixelsleuth.localization.methods import list_methods, parse_methods, run_maps

    image, _ = spliced_photo()
    maps, failures = run_maps(image, list_methods())
    for item in maps:
        assert item.map.shape == image.shape[:2] and item.map.dtype == np.float32
        assert float(item.map.min()) >= 0.0 and float(item.map.max()) <= 1.0
        assert 0.0 <= item.score <= 1.0 and item.reading.endswith(".")
    assert len(maps) + len(failures) == len(list_methods())
    assert all("internal error" not in message for _, message in failures)
    with pytest.raises(UsageError, match="no localization map named 'nope'"):
        parse_methods("ela,nope")


def test_scan_with_localize_carries_the_regions_as_evidence(tmp_path, monkeypatch):
    import pixelsleuth.localization.evidence as evidence

    image, _ = spliced_photo()
    Image.fromarray(image).save(tmp_path / "edited.png")
    monkeypatch.setattr(evidence, "_shipped_card", lambda: LocalizationFusion.uniform(["ela"]))
    args = ["scan", str(tmp_path / "edited.png"), "--json", "--no-store", "--file-timeout", "0"]
    plain = runner.invoke(app, [*args, "--no-default-detectors"])
    localized = runner.invoke(app, [*args, "--no-default-detectors", "--localize"])
    assert plain.exit_code == 0 and localized.exit_code == 0, localized.output
    sources = [item["source"] for item in json.loads(plain.stdout)["evidence"]]
    assert "localization" not in sources
    found = [item for item in json.loads(localized.stdout)["evidence"] if item["source"] == "localization"]
    assert found[0]["points_to"] == "manipulated" and found[0]["data"]["regions"]
    assert json.loads(localized.stdout)["verdict"] in ("manipulated", "inconclusive")


def test_a_controlled_map_keeps_its_precise_region_inside_a_broad_fused_one():
    broad = np.full((64, 64), 0.9, np.float32)
    copy = np.zeros((64, 64), np.float32)
    copy[40:56, 40:56] = 1.0
    maps = [
        ForensicMap("learned", broad, 0.9, "...", None),
        ForensicMap("copy-move", copy, 1.0, "...", Region(40, 40, 56, 56, 1.0)),
    ]
    found = fuse_maps(maps, LocalizationFusion.uniform(["learned", "copy-move"]), (64, 64))
    assert found.regions[0].methods == ("copy-move",)
    assert found.regions[0].region.to_dict() == {"left": 40, "top": 40, "right": 56, "bottom": 56}
    assert found.mask[40:56, 40:56].all() and found.heat[40:56, 40:56].min() >= 0.99


def test_scan_with_localize_gives_each_file_a_longer_time_budget(tmp_path, monkeypatch):
    import pixelsleuth.outputs.cli as cli

    budgets = []

    class Recording(cli.Analyzer):
        def __init__(self, config, file_timeout):
            budgets.append(file_timeout)
            super().__init__(config)

        def close(self):
            pass

    monkeypatch.setattr(cli, "IsolatedAnalyzer", Recording)
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    base = ["scan", str(tmp_path / "flat.png"), "--no-store", "--no-default-detectors", "--json"]
    for extra in ([], ["--localize"], ["--localize", "--file-timeout", "5"]):
        assert runner.invoke(app, [*base, *extra]).exit_code == 0
    assert budgets == [cli.DEFAULT_FILE_TIMEOUT, cli.LOCALIZE_FILE_TIMEOUT, 5.0]
