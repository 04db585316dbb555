"""Scan results as Parquet partitions in a folder (local, or an object store pyarrow can write to).

A partition is one Parquet file `part-<digest>.parquet` holding one row per analysed file: the flat
columns of `pixelsleuth export --format parquet` (`export.COLUMNS`), the file it came from (`file_key`:
its absolute path or URI, `file_size`, `file_mtime_ns`) and the full JSON record (`record_json`, schema
`pixelsleuth.analysis/1`). A partition appears whole or not at all (written beside, then renamed; an
object store makes an upload visible only once it completes), so the files listed in the partitions of a
folder are exactly the files that are done: a re-run skips them, and merging the folder into the SQLite
store any number of times adds each result once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelsleuth.analysis import Analysis
from pixelsleuth.outputs.export import arrow_schema, flatten
from pixelsleuth.outputs.scan import store_or_stand_in
from pixelsleuth.outputs.store import FileStamp, ResultStore

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

PARTITION_PREFIX, PARTITION_SUFFIX = "part-", ".parquet"
PARTITION_GLOB = PARTITION_PREFIX + "*" + PARTITION_SUFFIX  # what DuckDB or Spark should read
# Columns beside the export's flat ones: which file (for resuming) and the whole record.
FILE_COLUMNS: tuple[str, ...] = ("file_key", "file_size", "file_mtime_ns")
RECORD_COLUMN = "record_json"

_log = logging.getLogger("pixelsleuth")


def is_uri(location: str) -> bool:
    """True for `s3://…`, `gs://…`, `abfs://…`, `hdfs://…` and the like (not for local paths).

    Example:
        >>> is_uri("s3://bucket/images/"), is_uri("images/"), is_uri("C:/images")
        (True, False, False)
    """
    scheme, sep, _ = location.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def resolve_folder(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system and path of a folder given as a local path or a URI."""
    import pyarrow.fs as pafs

    text = str(location)
    if is_uri(text):
        return pafs.FileSystem.from_uri(text)
    return pafs.LocalFileSystem(), str(Path(text).absolute())


def partition_schema() -> pa.Schema:
    """The export's flat columns, then `file_key`, `file_size`, `file_mtime_ns` and `record_json`."""
    import pyarrow as pa

    extra = [
        pa.field("file_key", pa.string()),
        pa.field("file_size", pa.int64()),
        pa.field("file_mtime_ns", pa.int64()),
        pa.field(RECORD_COLUMN, pa.string()),
    ]
    return pa.schema([*arrow_schema(), *extra])


def result_row(analysis: Analysis, version: str, stamp: FileStamp | None) -> dict[str, Any]:
    """One partition row: the flattened record of `analysis` and the file it came from."""
    record = analysis.to_dict()
    return {
        **flatten({**record, "analysis_version": version}),
        "file_key": None if stamp is None else stamp.path,
        "file_size": None if stamp is None else stamp.size,
        "file_mtime_ns": None if stamp is None else stamp.mtime_ns,
        RECORD_COLUMN: json.dumps(record, ensure_ascii=False, separators=(",", ":")),
    }


def rows_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(list(rows), schema=partition_schema())


def partition_name(table: pa.Table) -> str:
    """A name derived from the files and versions the partition holds: writing the same results again
    (a retried task) replaces the partition instead of adding a second copy."""
    digest = hashlib.sha256()
    columns = [table.column(name).to_pylist() for name in ("path", *FILE_COLUMNS, "analysis_version")]
    for values in zip(*columns, strict=True):
        digest.update(json.dumps(values, ensure_ascii=False).encode("utf-8") + b"\n")
    return f"{PARTITION_PREFIX}{digest.hexdigest()[:24]}{PARTITION_SUFFIX}"


def write_partition(folder: str | Path, table: pa.Table) -> str:
    """Write `table` as one partition of `folder` (created if needed); return the partition's name.

    On a local disk the file is written under a hidden name and renamed, so a partition is never seen
    half written; an object store shows an upload only once it is complete.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, root = resolve_folder(folder)
    fs.create_dir(root, recursive=True)
    name = partition_name(table)
    target = f"{root.rstrip('/')}/{name}"
    if isinstance(fs, pafs.LocalFileSystem):
        temporary = f"{root.rstrip('/')}/.{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, temporary, filesystem=fs)
        fs.move(temporary, target)
    else:
        pq.write_table(table, target, filesystem=fs)
    return name


def list_partitions(folder: str | Path) -> list[str]:
    """Paths (in `folder`'s file system) of its finished partitions, sorted; none when it does not exist."""
    import pyarrow.fs as pafs

    fs, root = resolve_folder(folder)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=False))
    names = [
        info.path
        for info in infos
        if info.type == pafs.FileType.File
        and info.base_name.startswith(PARTITION_PREFIX)
        and info.base_name.endswith(PARTITION_SUFFIX)
    ]
    return sorted(names)


def _read(fs: pafs.FileSystem, path: str, columns: list[str]) -> pa.Table | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns, filesystem=fs)
    except (OSError, pa.ArrowException) as exc:  # e.g. damaged by hand: its files are simply done again
        _log.warning("skipping the unreadable partition %s: %s", path, exc)
        return None


@dataclass(frozen=True)
class FileKey:
    """A file as a partition or the store knows it: path or URI, size, modification time, version."""

    key: str
    size: int
    mtime_ns: int
    version: str


def finished_files(folder: str | Path, version: str | None = None) -> set[FileKey]:
    """The files whose results are in `folder`'s partitions (of one analysis version, if given)."""
    fs, _ = resolve_folder(folder)
    done: set[FileKey] = set()
    for path in list_partitions(folder):
        table = _read(fs, path, [*FILE_COLUMNS, "analysis_version"])
        if table is None:
            continue
        for key, size, mtime_ns, row_version in zip(
            *(table.column(name).to_pylist() for name in (*FILE_COLUMNS, "analysis_version")), strict=True
        ):
            if key is not None and (version is None or row_version == version):
                done.add(FileKey(key, size, mtime_ns, row_version))
    return done


def iter_partition_results(
    folder: str | Path, version: str | None = None
) -> Iterator[tuple[Analysis, str, FileStamp | None]]:
    """Every result in `folder`'s partitions: (analysis, its analysis version, the file's stamp)."""
    fs, _ = resolve_folder(folder)
    for path in list_partitions(folder):
        table = _read(fs, path, [*FILE_COLUMNS, "analysis_version", RECORD_COLUMN])
        if table is None:
            continue
        for key, size, mtime_ns, row_version, text in zip(
            *(table.column(name).to_pylist() for name in (*FILE_COLUMNS, "analysis_version", RECORD_COLUMN)),
            strict=True,
        ):
            if version is not None and row_version != version:
                continue
            stamp = None if key is None else FileStamp(key, size, mtime_ns)
            yield Analysis.from_dict(json.loads(text)), row_version, stamp


@dataclass(frozen=True)
class MergeCounts:
    added: int  # results new to the store
    present: int  # results the store already had for the same file (same path or URI, size and time)


def merge_into_store(folder: str | Path, store: ResultStore, version: str | None = None) -> MergeCounts:
    """Put every result of `folder`'s partitions into the SQLite store; idempotent.

    A result whose file the store already knows (same path or URI, size, modification time and analysis
    version) is left as it is, so merging twice adds nothing; a file that could not be stat-ed has no
    stamp and is stored under its path, replacing itself. A result the store refuses is stored as a typed
    `unstorable_result` error, as in a local scan.
    """
    added = present = 0
    for analysis, row_version, stamp in iter_partition_results(folder, version):
        if stamp is not None and store.lookup_file(stamp, row_version) is not None:
            present += 1
            continue
        store_or_stand_in(store, analysis, row_version, stamp)
        added += 1
    return MergeCounts(added, present)
