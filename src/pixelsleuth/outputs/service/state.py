"""What the service keeps: results (the `ResultStore`), their ids, batch jobs, and uploaded images.

The service's own tables live in the results store's SQLite file, beside `analyses`:
`service_results` maps an id to (sha256, analysis version), its owner, the client's file name and
where the image is kept; `service_batches` and `service_batch_items` hold every batch job, its owner
and its files. Each change is one committed transaction (WAL), so a server killed at any instant and
started again resumes its batches and neither loses nor repeats a file. All database work runs on one
thread (`StateDB.call`).

An owner is the `owner_id` of the API key that made the row (empty without keys). The same image
posted under two owners is analysed once (`analyses`) but has one id per owner, so neither can read
the other's. Stores made before owners existed get the columns added when they are opened.

Example:
    >>> result_id("ab" * 32, "pixelsleuth-0.1.0/x")
    '...'
    >>> len(result_id("ab" * 32, "v"))
    32
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pixelsleuth.analysis import Analysis
from pixelsleuth.outputs.store import ResultStore

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS service_results (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    analysis_version TEXT NOT NULL,
    image_path TEXT,
    created_at REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    name TEXT
);
CREATE TABLE IF NOT EXISTS service_batches (
    id TEXT PRIMARY KEY,
    localize INTEGER NOT NULL,
    analysis_version TEXT NOT NULL,
    total INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS service_batch_items (
    batch_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    result_id TEXT,
    verdict TEXT,
    score REAL,
    error TEXT,
    PRIMARY KEY (batch_id, position)
);
"""
# Columns added to the tables above after their first release: (table, column, definition). Stores
# made before get them from `_migrate` (rows already there: no owner, no name).
_ADDED_COLUMNS = (
    ("service_results", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("service_results", "name", "TEXT"),
    ("service_batches", "owner", "TEXT NOT NULL DEFAULT ''"),
)


def result_id(sha256: str, version: str, owner: str = "") -> str:
    """A result's stable id: 32 hex digits of SHA-256 over the image's SHA-256, the analysis version and
    the owner (without an owner, the id results had before owners existed)."""
    text = f"{sha256}\n{version}" + (f"\n{owner}" if owner else "")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns of `_ADDED_COLUMNS` a store lacks, in one transaction (two servers may race)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, column, definition in _ADDED_COLUMNS:
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        db.commit()
    except BaseException:
        db.rollback()
        raise


@dataclass(frozen=True)
class StoredResult:
    id: str
    record: dict[str, Any]
    image_path: str | None
    owner: str = ""


@dataclass(frozen=True)
class BatchItem:
    batch_id: str
    position: int
    name: str
    source: str


@dataclass(frozen=True)
class BatchJob:
    id: str
    localize: bool
    owner: str


class StateDB:
    """The results store plus the service's tables, used from one dedicated thread."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self.path = path
        self._store: ResultStore | None = None
        self._db: sqlite3.Connection | None = None
        self._executor.submit(self._open).result()

    def _open(self) -> None:
        self._store = ResultStore(self.path)
        self._db = sqlite3.connect(str(self.path), timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        _migrate(self._db)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        def _close() -> None:
            if self._store is not None:
                self._store.close()
            if self._db is not None:
                self._db.close()

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)

    @property
    def store(self) -> ResultStore:
        assert self._store is not None
        return self._store

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    # --- results (database thread only) ---------------------------------------------------------

    def find(self, sha256: str, version: str) -> Analysis | None:
        return self.store.get(sha256, version)

    def save(self, analysis: Analysis, version: str, image_path: str | None, *, owner: str = "") -> str:
        """Store a finished analysis and its id for `owner`; returns the id."""
        assert analysis.sha256 is not None
        self.store.put(analysis, version)
        return self.remember(analysis.sha256, version, image_path, owner=owner, name=analysis.path)

    def remember(
        self, sha256: str, version: str, image_path: str | None, *, owner: str = "", name: str | None = None
    ) -> str:
        """The id of this image's result for `owner`, recorded (or renewed) with the client's file name."""
        identifier = result_id(sha256, version, owner)
        with self.db:
            self.db.execute(
                "INSERT INTO service_results (id, sha256, analysis_version, image_path, created_at, owner, "
                "name) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET image_path = excluded.image_path, "
                "name = coalesce(excluded.name, name)",
                (identifier, sha256, version, image_path, time.time(), owner, name),
            )
        return identifier

    def result(self, identifier: str) -> StoredResult | None:
        """The result with this id, its record carrying this owner's file name (the analysis is shared)."""
        row = self.db.execute(
            "SELECT sha256, analysis_version, image_path, owner, name FROM service_results WHERE id = ?",
            (identifier,),
        ).fetchone()
        if row is None:
            return None
        analysis = self.store.get(row[0], row[1])
        if analysis is None:
            return None
        record = analysis.to_dict()
        record["analysis_version"] = row[1]
        if row[4] is not None:
            record["path"] = row[4]
        return StoredResult(identifier, record, row[2], row[3])

    # --- batches (database thread only) ---------------------------------------------------------

    def create_batch(
        self, items: list[tuple[str, str]], *, localize: bool, version: str, owner: str = ""
    ) -> str:
        """A new batch of (name, source path) items for `owner`, committed whole; returns its id."""
        batch_id = uuid.uuid4().hex[:20]
        with self.db:
            self.db.execute(
                "INSERT INTO service_batches (id, localize, analysis_version, total, status, created_at, "
                "owner) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (batch_id, int(localize), version, len(items), time.time(), owner),
            )
            self.db.executemany(
                "INSERT INTO service_batch_items (batch_id, position, name, source) VALUES (?, ?, ?, ?)",
                [(batch_id, position, name, source) for position, (name, source) in enumerate(items)],
            )
        return batch_id

    def unfinished_batches(self) -> list[BatchJob]:
        rows = self.db.execute(
            "SELECT id, localize, owner FROM service_batches WHERE status = 'running' ORDER BY created_at"
        ).fetchall()
        return [BatchJob(row[0], bool(row[1]), row[2]) for row in rows]

    def batch_owner(self, batch_id: str) -> str | None:
        """The owner of a batch ("" for none), or None when there is no such batch."""
        row = self.db.execute("SELECT owner FROM service_batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else row[0]

    def pending_items(self, batch_id: str) -> list[BatchItem]:
        rows = self.db.execute(
            "SELECT position, name, source FROM service_batch_items WHERE batch_id = ? AND done = 0 "
            "ORDER BY position",
            (batch_id,),
        ).fetchall()
        return [BatchItem(batch_id, *row) for row in rows]

    def pending_sources(self) -> set[str]:
        """Files that unfinished batch items still need (retention must not delete them)."""
        rows = self.db.execute("SELECT source FROM service_batch_items WHERE done = 0").fetchall()
        return {row[0] for row in rows}

    def finish_item(
        self, item: BatchItem, *, identifier: str | None, analysis: Analysis, error: dict | None
    ) -> None:
        """Record an item's outcome once (a second call for the same item changes nothing)."""
        with self.db:
            self.db.execute(
                "UPDATE service_batch_items SET done = 1, result_id = ?, verdict = ?, score = ?, error = ? "
                "WHERE batch_id = ? AND position = ? AND done = 0",
                (
                    identifier,
                    analysis.verdict,
                    analysis.score,
                    None if error is None else json.dumps(error),
                    item.batch_id,
                    item.position,
                ),
            )

    def finish_batch(self, batch_id: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE service_batches SET status = 'done', finished_at = ? "
                "WHERE id = ? AND status = 'running' AND NOT EXISTS "
                "(SELECT 1 FROM service_batch_items WHERE batch_id = ? AND done = 0)",
                (time.time(), batch_id, batch_id),
            )

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT total, status, created_at, finished_at FROM service_batches WHERE id = ?", (batch_id,)
        ).fetchone()
        if row is None:
            return None
        items = self.db.execute(
            "SELECT position, name, result_id, verdict, score, error FROM service_batch_items "
            "WHERE batch_id = ? AND done = 1 ORDER BY position",
            (batch_id,),
        ).fetchall()
        results = [
            {
                "position": position,
                "name": name,
                "id": identifier,
                "verdict": verdict,
                "score": score,
                "error": None if error is None else json.loads(error),
                "url": None if identifier is None else f"/v1/analyses/{identifier}",
            }
            for position, name, identifier, verdict, score, error in items
        ]
        return {
            "id": batch_id,
            "status": row[1],
            "total": row[0],
            "done": len(results),
            "failed": sum(1 for item in results if item["error"] is not None),
            "created_at": row[2],
            "finished_at": row[3],
            "results": results,
        }

    def batch_counts(self) -> tuple[int, int]:
        """(running batches, items still to do)."""
        running = self.db.execute("SELECT COUNT(*) FROM service_batches WHERE status = 'running'").fetchone()
        pending = self.db.execute("SELECT COUNT(*) FROM service_batch_items WHERE done = 0").fetchone()
        return running[0], pending[0]


class ImageKeeper:
    """Uploaded images on disk, named by their SHA-256, kept `retention_s` after their last upload.

    Pictures made from an image (display JPEG, map PNGs) sit in ``derived/`` and go with it.
    """

    def __init__(self, folder: Path, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.images = folder / "images"
        self.derived = folder / "derived"
        self.incoming = folder / "incoming"
        for path in (self.images, self.derived, self.incoming):
            path.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self.clock = clock

    def temporary(self) -> tuple[int, str]:
        """A new file for an upload in progress (same file system as the images: renames are atomic)."""
        return tempfile.mkstemp(dir=self.incoming, prefix="upload-")

    def keep(self, temporary: str, sha256: str) -> Path:
        """Move a finished upload into place (or renew the copy already there); returns its path."""
        target = self.images / sha256
        os.replace(temporary, target)
        now = self.clock()
        os.utime(target, (now, now))
        return target

    def path(self, sha256: str) -> Path:
        return self.images / sha256

    def is_upload(self, path: str | None) -> bool:
        return path is not None and Path(path).parent == self.images

    def expired(self, path: Path) -> bool:
        """True when an uploaded image is gone or older than the retention."""
        try:
            kept_since = path.stat().st_mtime
        except OSError:
            return True
        return self.clock() - kept_since > self.retention_s

    def derived_path(self, sha256: str, name: str) -> Path:
        return self.derived / f"{sha256}.{name}"

    def forget(self, sha256: str) -> None:
        for path in [self.path(sha256), *self.derived.glob(f"{sha256}.*")]:
            path.unlink(missing_ok=True)

    def sweep(self, keep: set[str]) -> int:
        """Delete expired images (and their pictures) except those in `keep`; returns how many."""
        removed = 0
        for path in list(self.images.iterdir()):
            if str(path) not in keep and self.expired(path):
                self.forget(path.name)
                removed += 1
        for path in list(self.incoming.iterdir()):  # uploads a killed server left half-written
            try:
                stale = self.clock() - path.stat().st_mtime > max(self.retention_s, 3600)
            except OSError:
                continue
            if stale:
                path.unlink(missing_ok=True)
        return removed
