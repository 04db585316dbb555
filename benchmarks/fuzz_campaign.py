"""Fuzz campaign: a seeded hostile corpus through one `pixelsleuth scan` batch, against bare Pillow.

Generates the corpus of `pixelsleuth.bench.hostile` in a temporary folder (or --keep DIR), runs
`pixelsleuth scan FOLDER --json --store S --file-timeout T` over it as a subprocess, as a user runs it
(default detectors and limits), and reports what came back: results, files lost (no result line),
duplicates, timeouts, crashed analyses, internal errors, the error types, the peak resident memory of
the scan and its workers, wall time and throughput. The baseline, measured in the same run, is a bare
Pillow open + load of the same files (errors ignored; FIFOs and devices skipped, since they block);
the ratio is ours / bare in files per second.

    python benchmarks/fuzz_campaign.py [--count 1283] [--seed 0] [--file-timeout 60] [--keep DIR]
                                       [--families truncated,regex_bait]

Every problem is listed with its reproducer: family, index and seed (see `make_specimen`).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pixelsleuth.bench.hostile import (
    FAMILIES,
    HostileFile,
    MeasuredRun,
    record_path_key,
    run_measured,
    write_hostile_corpus,
)

LISTED = 30  # most reproducers printed per kind of problem


@dataclass
class FileOutcome:
    item: HostileFile
    records: list[dict] = field(default_factory=list)

    @property
    def error_type(self) -> str | None:
        error = self.records[0].get("error") if self.records else None
        return error.get("type") if isinstance(error, dict) else None

    @property
    def message(self) -> str:
        error = self.records[0].get("error") if self.records else None
        return str(error.get("message")) if isinstance(error, dict) else ""


@dataclass(frozen=True)
class Campaign:
    outcomes: list[FileOutcome]
    strays: int  # result lines that name no file of the corpus
    bad_lines: int  # stdout lines that are not JSON objects
    run: MeasuredRun


@contextmanager
def corpus_folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            sys.exit(f"--keep {keep}: the folder is not empty")
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="pixelsleuth-fuzz-") as tmp:
        yield Path(tmp)


def scan_command(folder: Path, store: Path, file_timeout: float) -> list[str]:
    command = [sys.executable, "-m", "pixelsleuth", "scan", str(folder), "--json", "--store", str(store)]
    if file_timeout > 0:
        command += ["--file-timeout", f"{file_timeout:g}"]
    return command


def collate(files: list[HostileFile], run: MeasuredRun) -> Campaign:
    outcomes = {os.fsencode(item.path): FileOutcome(item) for item in files if not item.path.is_dir()}
    strays = bad = 0
    for line in run.stdout.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(record, dict):
            bad += 1
            continue
        outcome = outcomes.get(record_path_key(record) or b"")
        if outcome is None:
            strays += 1
        else:
            outcome.records.append(record)
    return Campaign(list(outcomes.values()), strays, bad, run)


def bare_pillow_seconds(paths: list[Path]) -> tuple[float, int]:
    """Seconds to open and load every regular file with Pillow (errors ignored), and how many loaded."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    loaded = 0
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
                with Image.open(path) as image:
                    image.load()
                loaded += 1
            except Exception:  # the baseline ignores errors: it measures decoding work only
                continue
    return time.perf_counter() - start, loaded


def reproducer(outcome: FileOutcome, seed: int) -> str:
    item = outcome.item
    name = os.fsencode(item.path.name)
    detail = f" -> [{outcome.error_type}] {outcome.message[:160]}" if outcome.error_type else ""
    return f"  {item.family}[{item.index}] seed={seed} {name!a}: {item.note}{detail}"


def print_problems(title: str, outcomes: list[FileOutcome], seed: int) -> None:
    if not outcomes:
        return
    print(f"\n{title} ({len(outcomes)}):")
    for outcome in outcomes[:LISTED]:
        print(reproducer(outcome, seed))
    if len(outcomes) > LISTED:
        print(f"  ... and {len(outcomes) - LISTED} more")


def print_report(campaign: Campaign, seed: int, bare_s: float, bare_loaded: int) -> None:
    outcomes = campaign.outcomes
    run = campaign.run
    n = len(outcomes)
    lost = [o for o in outcomes if not o.records]
    duplicated = [o for o in outcomes if len(o.records) > 1]
    by_type: dict[str, list[FileOutcome]] = {}
    for outcome in outcomes:
        if outcome.error_type:
            by_type.setdefault(outcome.error_type, []).append(outcome)
    results = sum(len(o.records) for o in outcomes)
    ours_rate = n / run.wall_s if run.wall_s else 0.0
    bare_rate = n / bare_s if bare_s else float("inf")

    killed = " (killed by the guard)" if run.killed else ""
    print(f"\nscan exit status {run.returncode}{killed}")
    rows = [
        ("files", f"{n}"),
        ("results", f"{results}"),
        ("lost (no result)", f"{len(lost)}"),
        ("duplicates", f"{len(duplicated)}"),
        ("stray / non-JSON lines", f"{campaign.strays} / {campaign.bad_lines}"),
        ("hangs (timeout)", f"{len(by_type.get('timeout', []))}"),
        ("crashes (analysis_crashed)", f"{len(by_type.get('analysis_crashed', []))}"),
        ("internal errors", f"{len(by_type.get('internal_error', []))}"),
        ("peak RSS, scan + workers", f"{run.peak_rss_bytes / 2**20:.0f} MiB"),
        ("wall time", f"{run.wall_s:.1f} s"),
        ("pixelsleuth", f"{ours_rate:.2f} files/s"),
        ("bare Pillow open+load", f"{bare_rate:.2f} files/s ({bare_loaded} decoded, {bare_s:.1f} s)"),
        ("ratio (ours / bare)", f"{ours_rate / bare_rate:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")

    print("\nerror types:")
    for kind, items in sorted(by_type.items(), key=lambda pair: -len(pair[1])):
        print(f"  {kind:<22} {len(items):5d}")

    columns = ("files", "errors", "timeout", "crashed", "internal", "lost")
    print("\n" + f"{'family':<16}" + "".join(f"{name:>9}" for name in columns))
    for family in FAMILIES:
        members = [o for o in outcomes if o.item.family == family]
        if not members:
            continue
        kinds = Counter(o.error_type for o in members)
        errors = sum(count for kind, count in kinds.items() if kind)
        lost_here = sum(not o.records for o in members)
        cells = (len(members), errors, kinds["timeout"], kinds["analysis_crashed"], kinds["internal_error"])
        print(f"{family:<16}" + "".join(f"{cell:9d}" for cell in (*cells, lost_here)))

    print_problems("lost: no result line", lost, seed)
    print_problems("duplicated result lines", duplicated, seed)
    for kind in ("timeout", "analysis_crashed", "internal_error"):
        print_problems(kind, by_type.get(kind, []), seed)
    stderr = run.stderr.decode("utf-8", "replace")
    if "Traceback" in stderr:
        at = stderr.index("Traceback")
        print(f"\nstderr holds a traceback:\n{stderr[at : at + 3000]}")
    elif run.returncode not in (0, 1):
        print(f"\nstderr ends with:\n{stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1283)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--file-timeout", type=float, default=60.0, help="seconds per file; 0 leaves the option out"
    )
    parser.add_argument("--keep", type=Path, help="write the corpus (and the store) here and keep it")
    parser.add_argument("--families", help=f"comma-separated subset of: {', '.join(FAMILIES)}")
    parser.add_argument(
        "--guard", type=float, default=6 * 3600, help="kill the scan after this many seconds (a stall)"
    )
    args = parser.parse_args()
    families = tuple(args.families.split(",")) if args.families else None

    with corpus_folder(args.keep) as root:
        folder, store = root / "corpus", root / "results.sqlite3"
        start = time.perf_counter()
        files = write_hostile_corpus(folder, count=args.count, seed=args.seed, families=families)
        made_s = time.perf_counter() - start
        present = sorted({item.family for item in files}, key=FAMILIES.index)
        print(
            f"corpus: {len(files)} entries in {len(present)} families, seed {args.seed}, "
            f"generated in {made_s:.2f} s ({len(files) / made_s:.0f} files/s) in {folder}"
        )
        command = scan_command(folder, store, args.file_timeout)
        print("running:", " ".join(command[1:]))
        run = run_measured(command, workdir=root / "scan-output", guard_s=args.guard)
        campaign = collate(files, run)
        bare_s, bare_loaded = bare_pillow_seconds([o.item.path for o in campaign.outcomes])
        print_report(campaign, args.seed, bare_s, bare_loaded)


if __name__ == "__main__":
    main()
