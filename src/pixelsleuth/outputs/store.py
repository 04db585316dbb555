"""The results store: embedded SQLite, the source of truth for every analysis ever finished.

One row per (sha256, analysis version) holding the full JSON record. Each result is committed as soon
as it exists, in WAL mode, so a scan killed at any instant loses nothing already finished and a re-run
neither repeats nor duplicates it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from platformdirs import user_data_dir

from pixelsleuth.analysis import Analysis
from pixelsleuth.intake.text import display_path, path_bytes, path_is_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    sha256 TEXT NOT NULL,
    analysis_version TEXT NOT NULL,
    path TEXT,
    verdict TEXT NOT NULL,
    score REAL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (sha256, analysis_version)
);
CREATE TABLE IF NOT EXISTS seen_files (
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    analysis_version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (path, analysis_version)
);
"""


@dataclass(frozen=True)
class FileStamp:
    """A file as it is on disk now: absolute path, size and modification time."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStamp | None:
        """Stamp a file, or None when it cannot be stat-ed (missing, a dangling link or a link loop):
        such a file is analysed again on every scan, since it may be there next time.

        The path is made absolute but links are not resolved: two links to one target are two files
        of the scan, each with its own result (size and time are the target's).
        """
        try:
            absolute = Path(path).absolute()
            info = absolute.stat()
        except (OSError, RuntimeError):
            return None
        return cls(str(absolute), info.st_size, info.st_mtime_ns)


def path_key(path: str) -> str | bytes:
    """How a path is kept in the store, losslessly: as text when it is valid Unicode, else its raw bytes."""
    return path if path_is_text(path) else path_bytes(path)


def unread_file_key(path: str) -> str:
    """The store key of a file that could not be read (it has no content hash): derived from its path."""
    return "unread:" + hashlib.sha256(path_bytes(Path(path).absolute())).hexdigest()


def default_store_path() -> Path:
    """Where results go when no --store is given (the platform's per-user data folder)."""
    return Path(user_data_dir("pixelsleuth", appauthor=False)) / "results.sqlite3"


class ResultStore:
    """SQLite-backed results.

    Example:
        >>> with ResultStore(":memory:") as store:
        ...     store.count()
        0
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a killed process (not a power cut).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get(self, sha256: str, version: str) -> Analysis | None:
        row = self._db.execute(
            "SELECT result FROM analyses WHERE sha256 = ? AND analysis_version = ?", (sha256, version)
        ).fetchone()
        return Analysis.from_dict(json.loads(row[0])) if row else None

    def lookup_file(self, stamp: FileStamp, version: str) -> Analysis | None:
        """The stored analysis of this exact file (same absolute path, size and modification time)."""
        row = self._db.execute(
            "SELECT a.result FROM seen_files f JOIN analyses a "
            "ON a.sha256 = f.sha256 AND a.analysis_version = f.analysis_version "
            "WHERE f.path = ? AND f.size = ? AND f.mtime_ns = ? AND f.analysis_version = ?",
            (path_key(stamp.path), stamp.size, stamp.mtime_ns, version),
        ).fetchone()
        return Analysis.from_dict(json.loads(row[0])) if row else None

    def put(self, analysis: Analysis, version: str, *, stamp: FileStamp | None = None) -> None:
        """Store one finished analysis (atomically, committed at once).

        With the file's `stamp`, a later scan finds the result without reading the file again. A file
        that could not be read has no sha256; its result is kept under a key made from its path, so it
        is stored once per path and replaced when the file is scanned again.
        """
        if analysis.sha256 is None and analysis.path is None:
            raise ValueError("an analysis needs a sha256 or a path to be stored")
        key = analysis.sha256 or unread_file_key(analysis.path or "")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    version,
                    None if analysis.path is None else display_path(analysis.path),
                    analysis.verdict,
                    analysis.score,
                    analysis.to_json(),
                    now,
                ),
            )
            if stamp is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO seen_files VALUES (?, ?, ?, ?, ?)",
                    (path_key(stamp.path), stamp.size, stamp.mtime_ns, version, key),
                )

    def count(self, version: str | None = None) -> int:
        if version is None:
            return self._db.execute("SELECT COUNT(*) FROM analyses").fetchone()[0]
        return self._db.execute(
            "SELECT COUNT(*) FROM analyses WHERE analysis_version = ?", (version,)
        ).fetchone()[0]

    def versions(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT analysis_version FROM analyses ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def iter_records(self, version: str | None = None) -> Iterator[dict]:
        """Every stored result as its JSON dict, in insertion order (optionally one version only)."""
        query = "SELECT result, analysis_version FROM analyses"
        params: tuple[str, ...] = ()
        if version is not None:
            query += " WHERE analysis_version = ?"
            params = (version,)
        for result, row_version in self._db.execute(query + " ORDER BY rowid", params):
            record = json.loads(result)
            record["analysis_version"] = row_version
            yield record
