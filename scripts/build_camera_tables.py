"""Build the camera-consistency data tables from real camera JPEGs and published facts.

Writes two files (sorted, so re-running on the same inputs gives identical bytes):

* ``src/pixelsleuth/evidence/data/jpeg_quant_tables.json`` — the Annex K base tables, and known
  quantization tables of cameras and editors, each with where it came from.
* ``src/pixelsleuth/evidence/data/camera_resolutions.json`` — image sizes seen per camera model.

Inputs:

* the JPEGs under ``<shared>/data/real/`` ONLY (never ``data/dev/``, the held-out measuring set):
  EXIF Make/Model/Software/PixelX-/PixelYDimension and the DQT tables of each file. A file gives a
  *camera* entry only when it looks straight from the camera: no editor named in its Software tag and
  its EXIF pixel dimensions (if any) equal its real size. A file whose Software tag names an editor and
  whose tables are not standard IJG tables gives a *software* entry for that editor;
* Adobe Photoshop's tables as given in Pillow's ``PIL/JpegPresets.py`` ("JPEG quality settings
  equivalent to the Photoshop settings");
* the luma/chroma table sums that GIMP's ``plug-ins/file-jpeg/jpegqual.c`` lists for Photoshop
  settings (used only to name the Photoshop quality setting of a table we already have), and the
  cameras it lists as writing exact IJG tables (the tables are then computed, the sums cross-checked).

    python scripts/build_camera_tables.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from PIL import Image, JpegPresets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pixelsleuth.evidence.exif import parse_exif  # noqa: E402
from pixelsleuth.evidence.quant_tables import camera_key, ijg_scaled_table  # noqa: E402

DATA_OUT = REPO / "src/pixelsleuth/evidence/data"
JPEGQUAL = "GIMP plug-ins/file-jpeg/jpegqual.c"

# Software-tag words that name an editor or converter rather than camera firmware.
EDITOR_WORDS = (
    "photoshop", "lightroom", "gimp", "paint.net", "photos", "perfectly clear", "camedia master",
    "picasa", "acdsee", "snapseed", "affinity", "capture one", "darktable", "rawtherapee", "pixelmator",
    "irfanview", "xnview", "digikam", "imagemagick", "preview", "photoscape", "luminar", "aperture",
)  # fmt: skip

# (luma sum, chroma sum) -> Photoshop setting, as listed in GIMP's jpegqual.c.
PHOTOSHOP_SUMS: dict[tuple[int, int], str] = {
    (95, 166): "quality 12", (232, 443): "quality 11", (406, 722): "quality 10", (539, 801): "quality 9",
    (649, 853): "quality 8", (786, 926): "quality 7", (717, 782): "quality 6", (844, 849): "quality 5",
    (962, 892): "quality 4", (1068, 941): "quality 3", (1281, 998): "quality 2", (1484, 1083): "quality 1",
    (1582, 1108): "quality 0",
    (109, 171): "quality 12", (303, 466): "quality 11", (535, 750): "quality 10", (668, 830): "quality 9",
    (794, 895): "quality 8", (971, 950): "quality 7", (884, 831): "quality 6", (1032, 889): "quality 5",
    (1126, 940): "quality 4", (1216, 977): "quality 3",
    (95, 168): "Save for Web 100", (234, 445): "Save for Web 90", (339, 670): "Save for Web 85",
    (406, 724): "Save for Web 80", (525, 941): "Save for Web 75", (646, 1149): "Save for Web 70",
    (803, 1428): "Save for Web 65", (974, 1769): "Save for Web 60", (1085, 1996): "Save for Web 55",
    (1221, 1348): "Save for Web 50", (1821, 1997): "Save for Web 40", (2223, 2464): "Save for Web 30",
    (2575, 2903): "Save for Web 20", (3514, 3738): "Save for Web 10",
}  # fmt: skip

# Cameras GIMP's jpegqual.c lists with an exact IJG quality: (make, model as the camera writes it,
# quality, GIMP's setting name, luma sum, chroma sum). The sums are checked against our IJG tables.
IJG_CAMERAS: tuple[tuple[str, str, int, str, int, int], ...] = (
    ("EASTMAN KODAK COMPANY", "KODAK DC240 ZOOM DIGITAL CAMERA", 90, "?", 736, 1110),
    ("EASTMAN KODAK COMPANY", "KODAK P880 ZOOM DIGITAL CAMERA", 95, "?", 369, 558),
    ("Leica Camera AG", "M8 Digital Camera", 97, "?", 221, 333),
    ("NIKON", "E4300", 91, "Normal", 667, 999),
    ("NIKON", "E4300", 90, "Normal", 736, 1110),
    ("NIKON", "E4300", 88, "Normal", 884, 1332),
    ("OLYMPUS OPTICAL CO.,LTD", "C960Z,D460Z", 89, "Standard quality", 814, 1223),
    ("OLYMPUS OPTICAL CO.,LTD", "C211Z", 88, "Standard quality", 884, 1332),
    ("SONY", "DSC-W55", 99, "Fine", 86, 115),
    ("SONY", "DSC-W30", 97, "?", 221, 333),
    ("SONY", "DSC-W50", 97, "?", 221, 333),
    ("SONY", "DSC-H2", 97, "?", 221, 333),
    ("SONY", "DSC-H5", 97, "?", 221, 333),
    ("SONY", "DSC-W70", 93, "?", 518, 779),
    ("SONY", "DSC-W30", 80, "?", 1477, 2221),
    ("SONY", "DSC-P43", 80, "?", 1477, 2221),
    ("SONY", "DSC-S600", 80, "?", 1477, 2221),
    ("Sony Ericsson", "K750i", 90, "Fine", 736, 1110),
    ("Sony Ericsson", "K750i", 75, "Normal", 1858, 2780),
    ("Sony Ericsson", "W200i", 75, "Normal", 1858, 2780),
)

PILLOW_PRESET_NOTE = (
    "Pillow PIL/JpegPresets.py presets[{name!r}] "
    "('JPEG quality settings equivalent to the Photoshop settings')"
)


def libjpeg_base_tables() -> tuple[list[int], list[int]]:
    """Annex K tables K.1 and K.2, read back from libjpeg: at quality 50 its scale factor is exactly 1."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG", quality=50)
    tables = Image.open(buffer).quantization
    luma, chroma = list(tables[0]), list(tables[1])
    # Published sums of the two tables (GIMP jpegqual.c lists IJG quality 50 as 3688 / 5505).
    assert (sum(luma), sum(chroma)) == (3688, 5505), "libjpeg did not return the Annex K tables"
    return luma, chroma


def ijg_quality_of(tables: list[list[int]], luma_base: list[int], chroma_base: list[int]) -> int | None:
    for quality in range(1, 101):
        for baseline in (True, False):
            expected = [ijg_scaled_table(luma_base, quality, baseline).tolist()]
            expected += [ijg_scaled_table(chroma_base, quality, baseline).tolist()] * (len(tables) - 1)
            if expected == tables:
                return quality
    return None


def read_manifest(real: Path) -> dict[str, dict[str, str]]:
    manifest = real / "manifest.tsv"
    if not manifest.exists():
        return {}
    with manifest.open(encoding="utf-8", newline="") as handle:
        return {row["relpath"]: row for row in csv.DictReader(handle, delimiter="\t")}


def describe(relpath: str, manifest: dict[str, dict[str, str]]) -> str:
    row = manifest.get(relpath)
    if row is None:
        return f"shared/data/real/{relpath}"
    return f"shared/data/real/{relpath} ({row['repo']}@{row['commit'][:10]}:{row['repo_path']})"


def text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return re.sub(r"\s+", " ", str(value).replace("\x00", " ")).strip() if value is not None else ""


def camera_label(make: str, model: str) -> str:
    """ "Canon" + "Canon EOS 6D" -> "Canon EOS 6D"; "NIKON" + "E950" -> "NIKON E950"."""
    brand = make.split(" ")[0].lower()
    return model if brand and model.lower().startswith(brand) else f"{make} {model}".strip()


def is_editor(software: str) -> bool:
    lowered = software.lower()
    return any(word in lowered for word in EDITOR_WORDS)


def software_label(software: str) -> str:
    lowered = software.lower()
    if "lightroom" in lowered:
        return "Adobe Photoshop Lightroom"
    if "photoshop" in lowered:
        return "Adobe Photoshop"
    return software


def exif_dimensions(exif: Any) -> tuple[int, int] | None:
    width, height = exif.get("ExifImageWidth"), exif.get("ExifImageHeight")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None


def same_size(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a == b or a == (b[1], b[0])


class Collector:
    """Accumulates table entries and camera sizes, merging duplicates and their sources."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.sizes: dict[str, dict[str, Any]] = {}

    def add_entry(self, entry: dict[str, Any], source: str) -> None:
        tables = tuple(tuple(table) for table in entry["tables"])
        key = (entry["kind"], entry.get("camera") or entry["label"], tables)
        merged = self.entries.setdefault(key, {**entry, "sources": set(), "seen_as": set()})
        merged["sources"].add(source)
        if entry.get("seen_as"):
            merged["seen_as"].add(entry["seen_as"])
        for field in ("setting", "ijg_quality"):
            if merged.get(field) is None and entry.get(field) is not None:
                merged[field] = entry[field]

    def add_size(self, key: str, make: str, model: str, size: tuple[int, int], source: str) -> None:
        camera = self.sizes.setdefault(key, {"label": camera_label(make, model), "sizes": defaultdict(set)})
        landscape = (max(size), min(size))
        camera["sizes"][landscape].add(source)


def scan_real(real: Path, collector: Collector, luma_base: list[int], chroma_base: list[int]) -> None:
    manifest = read_manifest(real)
    for path in sorted(real.rglob("*")):
        if path.suffix.lower() not in {".jpg", ".jpeg", ".jpe"} or not path.is_file():
            continue
        relpath = path.relative_to(real).as_posix()
        with Image.open(path) as image:
            if image.format != "JPEG":
                print(f"skip {relpath}: not a JPEG ({image.format})", file=sys.stderr)
                continue
            tables = [list(image.quantization[key]) for key in sorted(image.quantization)]
            size = image.size
            exif = parse_exif(image.info.get("exif"))
        source = describe(relpath, manifest)
        make, model, software = text(exif.get("Make")), text(exif.get("Model")), text(exif.get("Software"))
        key = camera_key(make, model)
        ijg_quality = ijg_quality_of(tables, luma_base, chroma_base)
        dimensions = exif_dimensions(exif)
        editor = is_editor(software)

        if editor and ijg_quality is None:
            label = software_label(software)
            sums = (sum(tables[0]), sum(tables[1]) if len(tables) > 1 else 0)
            setting = PHOTOSHOP_SUMS.get(sums) if label == "Adobe Photoshop" else None
            entry = {"kind": "software", "label": label, "camera": None, "setting": setting}
            collector.add_entry({**entry, "ijg_quality": None, "tables": tables, "seen_as": software}, source)
            print(f"software {relpath}: {software!r} {setting or ''}", file=sys.stderr)
        if key is None:
            continue
        if not editor and dimensions is not None:
            # The camera wrote these dimensions; they stay true of the capture even after a resize.
            collector.add_size(key, make, model, dimensions, source + " [EXIF PixelX/YDimension]")
        if editor:
            print(f"skip camera entry {relpath}: Software {software!r} is an editor", file=sys.stderr)
            continue
        if dimensions is not None and not same_size(dimensions, size):
            print(f"skip camera entry {relpath}: EXIF size {dimensions} != real {size}", file=sys.stderr)
            continue
        collector.add_size(key, make, model, size, source + " [pixels]")
        entry = {"kind": "camera", "label": camera_label(make, model), "camera": key, "setting": None}
        collector.add_entry({**entry, "ijg_quality": ijg_quality, "tables": tables}, source)
        print(f"camera {relpath}: {key} ijg={ijg_quality}", file=sys.stderr)


def add_published(collector: Collector, luma_base: list[int], chroma_base: list[int]) -> None:
    for name in sorted(JpegPresets.presets):
        tables = [list(table) for table in JpegPresets.presets[name]["quantization"]]
        setting = PHOTOSHOP_SUMS.get((sum(tables[0]), sum(tables[1])))
        entry = {"kind": "software", "label": "Adobe Photoshop", "camera": None, "setting": setting}
        collector.add_entry(
            {**entry, "ijg_quality": None, "tables": tables}, PILLOW_PRESET_NOTE.format(name=name)
        )

    for make, model, quality, gimp_setting, luma_sum, chroma_sum in IJG_CAMERAS:
        luma = ijg_scaled_table(luma_base, quality).tolist()
        chroma = ijg_scaled_table(chroma_base, quality).tolist()
        assert (sum(luma), sum(chroma)) == (luma_sum, chroma_sum), (
            f"{model}: sums disagree with IJG {quality}"
        )
        key = camera_key(make, model)
        entry = {"kind": "camera", "label": camera_label(make, model), "camera": key, "setting": None}
        source = (
            f"{JPEGQUAL}: {model} '{gimp_setting}' = exact IJG quality {quality} "
            f"(sums {luma_sum}/{chroma_sum})"
        )
        collector.add_entry({**entry, "ijg_quality": quality, "tables": [luma, chroma]}, source)


def compact_json(document: dict[str, Any]) -> str:
    """JSON with every list of numbers on one line."""
    raw = json.dumps(document, indent=1, ensure_ascii=False)
    numbers = re.compile(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]")
    return numbers.sub(lambda match: "[" + re.sub(r",\s*", ", ", match.group(1)) + "]", raw) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=DATA_OUT)
    args = parser.parse_args()
    real = args.data / "real"
    if not real.is_dir():
        raise SystemExit(f"no folder {real}: pass --data pointing at the shared data")

    luma_base, chroma_base = libjpeg_base_tables()
    collector = Collector()
    scan_real(real, collector, luma_base, chroma_base)
    add_published(collector, luma_base, chroma_base)

    entries = []
    for merged in collector.entries.values():
        entries.append(
            {
                "kind": merged["kind"],
                "label": merged["label"],
                "camera": merged.get("camera"),
                "setting": merged.get("setting"),
                "ijg_quality": merged.get("ijg_quality"),
                "seen_as": sorted(merged["seen_as"]),
                "sources": sorted(merged["sources"]),
                "tables": [list(table) for table in merged["tables"]],
            }
        )
    entries.sort(key=lambda e: (e["kind"], e["camera"] or e["label"], e["setting"] or "", e["tables"]))
    quant_document = {
        "description": (
            "JPEG quantization tables (natural order, table id order) known to come from specific cameras "
            "or programs, and the ITU-T T.81 Annex K base tables that IJG libjpeg scales by quality. "
            "Written by scripts/build_camera_tables.py; do not edit by hand."
        ),
        "ijg_base_tables": {
            "source": (
                "ITU-T T.81 Annex K tables K.1 (luminance) and K.2 (chrominance), "
                "read from libjpeg at quality 50"
            ),
            "luminance": luma_base,
            "chrominance": chroma_base,
        },
        "entries": entries,
    }

    cameras = {}
    for key in sorted(collector.sizes):
        camera = collector.sizes[key]
        cameras[key] = {
            "label": camera["label"],
            "resolutions": [
                {"width": w, "height": h, "sources": sorted(camera["sizes"][(w, h)])}
                for (w, h) in sorted(camera["sizes"], reverse=True)
            ],
        }
    resolution_document = {
        "description": (
            "Image sizes (landscape width x height) seen from each camera model, by camera key "
            "(pixelsleuth.evidence.quant_tables.camera_key). Cameras offer several sizes and aspect "
            "ratios; this lists only those observed. Written by scripts/build_camera_tables.py."
        ),
        "cameras": cameras,
    }

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jpeg_quant_tables.json").write_text(compact_json(quant_document), encoding="utf-8")
    (args.out / "camera_resolutions.json").write_text(compact_json(resolution_document), encoding="utf-8")
    print(f"wrote {len(entries)} table entries and {len(cameras)} cameras to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
