"""The cross-generator protocol: fold selection, training per fold, the tables, resuming, the command.

One tiny forged dataset (three untrained generator families, 64-pixel crops) and one two-fold benchmark
(one epoch on 32-pixel crops) are built once for the module; the other tests read or copy them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from imagegen import encode, photo_like_rgb
from pixelsleuth.bench.command import generalization_command
from pixelsleuth.bench.generalization import (
    DEFAULT_PERTURBATIONS,
    FamilyNotInDatasetError,
    Fold,
    FoldMismatchError,
    FoldResult,
    GeneralizationReport,
    InvalidFoldError,
    NotAForgedDatasetError,
    UnknownPerturbationError,
    all_families_fold,
    dataset_families,
    family_subsets,
    leave_one_out_folds,
    make_folds,
    perturbation_steps,
    plot_generalization,
    run_generalization,
    single_source_folds,
)
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.forge.build import forge_dataset
from pixelsleuth.forge.families import untrained_family
from pixelsleuth.train import loop
from pixelsleuth.train.config import load_config

FAMILIES = ("ae-nearest-x2", "ae-transposed-x2", "vae-nearest-x4")  # the VAE also samples: a -synthetic twin
GROUPS = {"ae": ["ae-nearest-x2", "ae-transposed-x2"], "vae": ["vae-nearest-x4"]}
# NPR refuses images under 32 pixels, and the forge's post-processing shrinks some 64-pixel crops to about
# 40: a 2x downscale would leave nothing to score here, so the tests perturb by JPEG only.
PERTURBATIONS = ["jpeg:70"]
CONFIG = """
detector = "npr"
crop_size = 32
batch_size = 16
epochs = 1
seed = 0
output = "unused"

[data]
train = "unused"

[schedule]
name = "none"

[early_stop]
metric = "ap"
"""


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generalization")
    photos = folder / "photos"
    photos.mkdir()
    for index in range(10):
        rgb = photo_like_rgb(80 + 5 * index, 72 + 4 * index, seed=index)
        (photos / f"photo{index:02d}.png").write_bytes(encode(rgb, "PNG"))
    zoo = [untrained_family(name, seed=index) for index, name in enumerate(FAMILIES)]
    forge_dataset(photos, folder / "data", families=zoo, per_family=6, seed=0, crop=64)
    (folder / "config.toml").write_text(CONFIG, encoding="utf-8")
    return folder / "data"


@pytest.fixture(scope="module")
def benchmark(forged: Path) -> tuple[GeneralizationReport, Path]:
    output = forged.parent / "benchmark"
    config = load_config(forged.parent / "config.toml")
    folds = leave_one_out_folds(FAMILIES, GROUPS)
    report = run_generalization(forged, config, folds, output, robustness=PERTURBATIONS, batch_size=8)
    report.save(output)
    plot_generalization(report, output / "generalization.png")
    return report, output


def _copy(output: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "benchmark"
    shutil.copytree(output, copy)
    return copy


def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of the first Markdown table (header first, separator left out)."""
    lines = markdown.split("\n\n")[0].splitlines()
    return [
        [cell.strip() for cell in line.strip("|").split("|")] for line in lines if not line.startswith("|:")
    ]


# Folds.


def test_leave_one_out_single_and_all_folds() -> None:
    folds = leave_one_out_folds(["a", "b", "c"])
    assert [(fold.name, fold.train_families, fold.held_out) for fold in folds] == [
        ("without-a", ("b", "c"), ("a",)),
        ("without-b", ("a", "c"), ("b",)),
        ("without-c", ("a", "b"), ("c",)),
    ]
    grouped = leave_one_out_folds(["a", "b", "c"], {"ab": ["a", "b"]})
    assert [(fold.name, fold.train_families, fold.held_out) for fold in grouped] == [
        ("without-ab", ("c",), ("a", "b"))
    ]
    single = single_source_folds(["a", "b", "c"])
    assert (single[0].name, single[0].train_families, single[0].held_out) == ("only-a", ("a",), ("b", "c"))
    assert all_families_fold(["a", "b"]) == Fold("all", ("a", "b"), ())
    assert make_folds("all", ["a", "b"]) == [Fold("all", ("a", "b"), ())]
    assert [fold.name for fold in make_folds("single", ["a", "b"])] == ["only-a", "only-b"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: leave_one_out_folds(["a"]), "at least two families"),
        (lambda: leave_one_out_folds(["a", "b"], {"x": ["a", "z"]}), "names z"),
        (lambda: leave_one_out_folds(["a", "b"], {"x": ["a", "b"]}), "leaves no family to train on"),
        (lambda: single_source_folds(["a"]), "at least two families"),
        (lambda: all_families_fold([]), "at least one family"),
        (lambda: make_folds("round-robin", ["a", "b"]), "unknown protocol"),
        (lambda: make_folds("single", ["a", "b"], {"x": ["a"]}), "only by the leave-one-out"),
    ],
)
def test_impossible_folds_raise_a_typed_error(make, message: str) -> None:
    with pytest.raises(InvalidFoldError, match=message) as caught:
        make()
    assert isinstance(caught.value, PixelsleuthError) and caught.value.type == "invalid_fold"


def test_dataset_families_reads_the_manifest_and_pairs_synthetic_subsets(forged: Path) -> None:
    mapping = dataset_families(forged)
    assert mapping == {
        "ae-nearest-x2": "ae-nearest-x2",
        "ae-transposed-x2": "ae-transposed-x2",
        "vae-nearest-x4": "vae-nearest-x4",
        "vae-nearest-x4-synthetic": "vae-nearest-x4",
    }
    assert family_subsets(mapping)["vae-nearest-x4"] == ["vae-nearest-x4", "vae-nearest-x4-synthetic"]


def test_dataset_families_falls_back_to_the_subset_name(tmp_path: Path) -> None:
    rows = [
        {"path": "train/gan-synthetic/1_fake/0.png", "label": "fake", "family": None},
        {"path": "train/gan-synthetic/0_real/0.png", "label": "real"},
        {"path": "manipulated/splice/images/train-0.png", "label": "manip"},
    ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert dataset_families(tmp_path) == {"gan-synthetic": "gan"}


def test_perturbations_are_grid_labels() -> None:
    assert [step.label for step in perturbation_steps(DEFAULT_PERTURBATIONS)] == list(DEFAULT_PERTURBATIONS)
    assert perturbation_steps(["none"]) == []
    with pytest.raises(UnknownPerturbationError, match=r"jpeg:75.*choose from .*jpeg:70"):
        perturbation_steps(["jpeg:75"])


# The benchmark.


def test_each_fold_trains_on_its_families_and_their_synthetic_twins(
    benchmark: tuple[GeneralizationReport, Path],
) -> None:
    report, output = benchmark
    classes = {fold.fold.name: fold.training["classes"] for fold in report.folds}
    assert classes == {
        "without-ae": ["vae-nearest-x4", "vae-nearest-x4-synthetic"],
        "without-vae": ["ae-nearest-x2", "ae-transposed-x2"],
    }
    for fold in report.folds:
        card = json.loads((output / fold.fold.name / "best.json").read_text())
        trained_on = set(card["extra"]["label_counts"]["train"])
        assert trained_on == set(classes[fold.fold.name])
        assert trained_on.isdisjoint(
            subset
            for subset, family in dataset_families(report.dataset).items()
            if family in fold.fold.held_out
        )
        assert fold.training["epochs_run"] == 1


def test_the_table_has_a_row_per_fold_and_a_column_per_family(
    benchmark: tuple[GeneralizationReport, Path],
) -> None:
    report, _ = benchmark
    assert report.families == sorted(FAMILIES)
    for fold in report.folds:
        assert set(fold.families) == set(FAMILIES)
        for family, result in fold.families.items():
            assert result.seen == (family not in fold.fold.held_out)
            assert result.metrics.n_real > 0 and result.metrics.n_fake > 0
        # the VAE family pools its laundered and -synthetic test subsets
        assert fold.families["vae-nearest-x4"].metrics.n == sum(
            fold.subsets[name].n for name in ("vae-nearest-x4", "vae-nearest-x4-synthetic")
        )
    rows = _table_rows(report.to_markdown())
    header, body = rows[0], rows[1:]
    assert header[1:4] == sorted(FAMILIES)
    assert [row[0] for row in body] == ["without-ae", "without-vae", "**mean unseen**"]
    for row, fold in zip(body, report.folds, strict=False):
        for column, family in enumerate(header[1:4], start=1):
            assert row[column].startswith("**") == (family in fold.fold.held_out), (fold.fold.name, family)
    # robustness: the held-out families, unperturbed and under each perturbation
    for fold in report.folds:
        assert fold.robustness_families == list(fold.fold.held_out)
        assert [row.perturbation for row in fold.robustness] == ["none", *PERTURBATIONS]
        assert set(fold.robustness[1].families) == set(fold.fold.held_out)
    assert "jpeg:70 AUC" in report.to_markdown()


def test_the_report_files_are_written(benchmark: tuple[GeneralizationReport, Path]) -> None:
    report, output = benchmark
    for name in ("generalization.md", "generalization.csv", "generalization.json", "generalization.png"):
        assert (output / name).stat().st_size > 0, name
    assert (output / "generalization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(io.StringIO((output / "generalization.csv").read_text())))
    unperturbed = [row for row in rows if row["perturbation"] == "none"]
    assert len(unperturbed) == len(report.folds) * len(FAMILIES)
    assert {row["seen"] for row in rows if row["perturbation"] == "jpeg:70"} == {"false"}
    assert all(0 <= float(row["auc"]) <= 1 for row in unperturbed)
    record = json.loads((output / "generalization.json").read_text())
    assert record["schema"] == "pixelsleuth.generalization/1"
    assert [fold["fold"]["name"] for fold in record["folds"]] == ["without-ae", "without-vae"]
    for fold in report.folds:
        stored = FoldResult.load(output / fold.fold.name / "fold.json")
        assert stored.fold == fold.fold
        assert stored.value("ae-nearest-x2") == pytest.approx(fold.value("ae-nearest-x2"), nan_ok=True)


def test_a_second_run_reuses_finished_folds(
    benchmark: tuple[GeneralizationReport, Path], forged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report, output = benchmark
    weights = {
        fold.fold.name: (output / fold.fold.name / "best.safetensors").stat().st_mtime_ns
        for fold in report.folds
    }

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(loop, "train", must_not_train)
    config = load_config(forged.parent / "config.toml")
    again = run_generalization(
        forged, config, leave_one_out_folds(FAMILIES, GROUPS), output, robustness=PERTURBATIONS
    )
    assert again.to_markdown() == report.to_markdown()
    for name, mtime in weights.items():
        assert (output / name / "best.safetensors").stat().st_mtime_ns == mtime


def test_an_interrupted_fold_resumes_and_a_changed_measurement_reruns_without_retraining(
    benchmark: tuple[GeneralizationReport, Path],
    forged: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, output = benchmark
    copy = _copy(output, tmp_path)
    (copy / "without-ae" / "fold.json").unlink()  # trained, but stopped before it was measured
    weights = {
        name: (copy / name / "best.safetensors").read_bytes() for name in ("without-ae", "without-vae")
    }
    calls: list[tuple[str, bool]] = []
    real_train = loop.train

    def recording_train(config, *, resume=False, **kwargs):
        calls.append((Path(config.output).name, resume))
        return real_train(config, resume=resume, **kwargs)

    monkeypatch.setattr(loop, "train", recording_train)
    config = load_config(forged.parent / "config.toml")
    folds = leave_one_out_folds(FAMILIES, GROUPS)
    report = run_generalization(forged, config, folds, copy, robustness=["blur:1"])
    # without-ae: resumed from its checkpoint; without-vae: measured again for the new perturbation
    assert calls == [("without-ae", True), ("without-vae", True)]
    for name, data in weights.items():
        assert (copy / name / "best.safetensors").read_bytes() == data, f"{name} was trained again"
        assert FoldResult.load(copy / name / "fold.json").evaluation["settings"]["perturbations"] == [
            "blur:1"
        ]
    assert report.perturbations == ["blur:1"]


# Errors.


def test_a_dataset_without_manifest_or_test_split_is_refused(forged: Path, tmp_path: Path) -> None:
    config = load_config(forged.parent / "config.toml")
    folds = [all_families_fold(["ae-nearest-x2"])]
    with pytest.raises(NotAForgedDatasetError, match=r"manifest\.jsonl"):
        run_generalization(tmp_path, config, folds, tmp_path / "out")
    partial = tmp_path / "partial"
    shutil.copytree(forged / "train", partial / "train")
    shutil.copy(forged / "manifest.jsonl", partial / "manifest.jsonl")
    with pytest.raises(NotAForgedDatasetError, match="no test split"):
        run_generalization(partial, config, folds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_families_empty_folds_and_foreign_folds_are_refused(
    benchmark: tuple[GeneralizationReport, Path], forged: Path, tmp_path: Path
) -> None:
    _, output = benchmark
    config = load_config(forged.parent / "config.toml")
    with pytest.raises(FamilyNotInDatasetError, match="no generator family gan-nearest-x16"):
        run_generalization(forged, config, [Fold("x", ("gan-nearest-x16",), ())], tmp_path / "out")
    with pytest.raises(InvalidFoldError, match="no family to train on"):
        run_generalization(forged, config, [Fold("x", (), ("ae-nearest-x2",))], tmp_path / "out")
    with pytest.raises(InvalidFoldError, match="two folds"):
        run_generalization(forged, config, [all_families_fold(FAMILIES)] * 2, tmp_path / "out")
    with pytest.raises(UnknownPerturbationError):
        run_generalization(
            forged, config, [all_families_fold(FAMILIES)], tmp_path / "out", robustness=["zoom:2"]
        )
    assert not (tmp_path / "out").exists()
    # a fold of the same name but other families, into a folder that holds the finished one
    # (checked before any fold trains: the new fold listed first is not started)
    fresh = Fold("fresh", ("ae-nearest-x2",), ("ae-transposed-x2",))
    other = Fold("without-ae", ("ae-nearest-x2",), ("vae-nearest-x4",))
    with pytest.raises(FoldMismatchError, match="another fold"):
        run_generalization(forged, config, [fresh, other], output, robustness=PERTURBATIONS)
    assert not (output / "fresh").exists()
    changed = load_config(forged.parent / "config.toml", ["optim.lr=1e-3"])
    with pytest.raises(FoldMismatchError, match=r"optim\.lr"):
        run_generalization(
            forged, changed, leave_one_out_folds(FAMILIES, GROUPS), output, robustness=PERTURBATIONS
        )


# The command.


def _cli() -> typer.Typer:
    app = typer.Typer()
    benchmark_app = typer.Typer()
    benchmark_app.command("generalization")(generalization_command)
    app.add_typer(benchmark_app, name="benchmark")
    return app


def test_command_prints_the_table_and_writes_the_files(
    benchmark: tuple[GeneralizationReport, Path],
    forged: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report, output = benchmark
    copy = _copy(output, tmp_path)
    for name in ("generalization.md", "generalization.png"):
        (copy / name).unlink()
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: pytest.fail("the command retrained a fold"))
    arguments = ["benchmark", "generalization", str(forged), "--config", str(forged.parent / "config.toml")]
    arguments += ["--output", str(copy), "--group", "ae=ae-nearest-x2,ae-transposed-x2"]
    arguments += ["--group", "vae=vae-nearest-x4", "--robustness", "jpeg:70", "--set", "epochs=1"]
    result = CliRunner().invoke(_cli(), arguments)
    assert result.exit_code == 0, result.output
    assert report.to_markdown().splitlines()[0] in result.output
    assert "| without-vae |" in result.output and "| without-ae |" in result.output
    assert (copy / "generalization.md").read_text() == report.to_markdown()
    assert (copy / "generalization.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--families", "ae-nearest-x2,nope"], "no generator family nope"),
        (["--protocol", "round-robin"], "unknown protocol"),
        (["--group", "broken"], "is not NAME=family"),
        (["--protocol", "single", "--group", "x=ae-nearest-x2"], "only by the leave-one-out"),
        (["--set", "epochs=0"], "epochs must be at least 1"),
        (["--robustness", "jpeg:75"], "unknown perturbation jpeg:75"),
    ],
)
def test_command_explains_bad_arguments(forged: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    arguments = ["benchmark", "generalization", str(forged), "--config", str(forged.parent / "config.toml")]
    result = CliRunner().invoke(_cli(), [*arguments, "--output", str(tmp_path / "out"), *extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()
