"""One hostile file must never stop a batch, stall it, or take the machine's memory.

A seeded corpus of about 300 hostile files (see `pixelsleuth.bench.hostile`) goes through ONE
`pixelsleuth scan --json --store` batch, as a user runs it (default detectors, default limits), and
then through a second batch over the same store. The checks are split into tests over the same two
runs, so a failure names what broke and lists the files, each with a reproducer: family, index, seed.

Memory is the peak resident size of the scan and every process it waited for (`os.wait4`). Nothing here
is timed; a guard only kills a batch that would otherwise hold CI for hours, and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pixelsleuth.bench.hostile import (
    FAMILIES,
    HostileFile,
    MeasuredRun,
    record_path_key,
    run_measured,
    write_hostile_corpus,
)

COUNT = 300
SEED = 0
FILE_TIMEOUT_S = 60
MAX_CHILD_RSS_BYTES = int(1.5 * 2**30)
# Not a speed requirement: only so that a stalled batch fails this test instead of hanging CI.
GUARD_S = 3 * 3600
SHOWN = 40  # most files listed in one failure message

# Raw text of Python or of a library, which a person should never have to read.
RAW_LIBRARY_TEXT = (
    "unpack_from",
    "index out of range",
    "decoder error",
    "<_io",
    "Traceback",
    "object has no attribute",
    "NoneType",
    "[Errno",
    "codec can't",
    "invalid literal for",
    "not enough values to unpack",
    "unexpected keyword argument",
    "positional argument",
    "unsupported operand",
    "is not subscriptable",
    "object is not",
)
_EXCEPTION_NAME = re.compile(
    r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Warning)\b"
    r"|\b(?:StopIteration|KeyboardInterrupt|SystemExit|GeneratorExit)\b"
    r"|\b(?:struct|zlib|re|binascii|sqlite3|expat)\.error\b"
    r"|\bat 0x[0-9a-fA-F]{6,}"
)


@dataclass(frozen=True)
class Batch:
    """Two scans of the same corpus into the same store, and the store's export afterwards."""

    folder: Path
    store: Path
    files: list[HostileFile]
    first: MeasuredRun
    second: MeasuredRun
    export: MeasuredRun
    fetched: list[str]  # requests that reached the URL the external entities name


def reproducer(item: HostileFile) -> str:
    return f"{item.family}[{item.index}] seed={SEED} {os.fsencode(item.path.name)!a}: {item.note}"


def listing(lines: list[str]) -> str:
    shown = "\n  ".join(lines[:SHOWN])
    more = f"\n  ... and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return f"\n  {shown}{more}"


def scan_command(folder: Path, store: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pixelsleuth",
        "scan",
        str(folder),
        "--json",
        "--store",
        str(store),
        "--file-timeout",
        str(FILE_TIMEOUT_S),
    ]


def accepted_requests(listener: socket.socket) -> list[str]:
    """Requests that connected to the listener (the kernel queues them; nobody needs to wait)."""
    listener.setblocking(False)
    requests = []
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return requests
        with connection:
            connection.settimeout(1)
            try:
                requests.append(connection.recv(200).decode("latin-1") or "(connected, sent nothing)")
            except OSError:
                requests.append("(connected)")


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    root = tmp_path_factory.mktemp("hostile_batch")
    folder, store = root / "corpus", root / "s.sqlite3"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/pixelsleuth-xxe"
        files = write_hostile_corpus(folder, count=COUNT, seed=SEED, fetch_url=url)
        first = run_measured(scan_command(folder, store), workdir=root / "first", guard_s=GUARD_S)
        second = run_measured(scan_command(folder, store), workdir=root / "second", guard_s=GUARD_S)
        export = run_measured(
            [sys.executable, "-m", "pixelsleuth", "export", "--store", str(store), "--format", "jsonl"],
            workdir=root / "export",
            guard_s=600,
        )
        fetched = accepted_requests(listener)
    yield Batch(folder, store, files, first, second, export, fetched)


def scanned_files(batch: Batch) -> list[HostileFile]:
    """The files a scan must report on: every entry but the folder named like an image."""
    return [item for item in batch.files if not item.path.is_dir()]


def json_lines(run: MeasuredRun) -> tuple[list[dict], list[str]]:
    """Parsed records and a description of each line that is not a JSON object."""
    records, bad = [], []
    text = run.stdout.decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            bad.append(f"line {number}: {exc}: {line[:160]!r}")
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(f"line {number}: not a JSON object: {line[:160]!r}")
    return records, bad


def records_by_file(batch: Batch, run: MeasuredRun) -> tuple[dict[bytes, list[dict]], list[dict]]:
    """Each scanned file's records (matched by path bytes), and the records that match no file."""
    records, _ = json_lines(run)
    wanted = {os.fsencode(item.path): item for item in scanned_files(batch)}
    found: dict[bytes, list[dict]] = {key: [] for key in wanted}
    strays = []
    for record in records:
        key = record_path_key(record)
        if key in found:
            found[key].append(record)
        else:
            strays.append(record)
    return found, strays


def run_report(run: MeasuredRun) -> str:
    stderr = run.stderr.decode("utf-8", "replace")
    killed = " (killed by the guard: the batch stalled)" if run.killed else ""
    return f"exit status {run.returncode}{killed}; stderr ends with:\n{stderr[-3000:]}"


def message_problem(message: object, paths: list[str]) -> str | None:
    """Why `message` is not a sentence for a person, or None when it is one."""
    if not isinstance(message, str) or not message.strip():
        return "no message"
    text = message
    for path in sorted((p for p in paths if p), key=len, reverse=True):
        text = text.replace(path, "<file>")
    for raw in RAW_LIBRARY_TEXT:
        if raw in text:
            return f"raw library text {raw!r}"
    match = _EXCEPTION_NAME.search(text)
    if match:
        return f"Python exception name {match.group(0)!r}"
    if "\n" in text.strip():
        return "several lines"
    if not text[0].isalnum() or len(text.split()) < 3:
        return "not a sentence"
    return None


def file_paths(item: HostileFile, records: list[dict]) -> list[str]:
    return [str(item.path), *(str(record.get("path") or "") for record in records)]


# --- the tests ---------------------------------------------------------------------------------------


def test_corpus_covers_every_family(batch: Batch) -> None:
    assert len(batch.files) == COUNT
    assert {item.family for item in batch.files} == set(FAMILIES)


def test_the_batch_finishes_with_status_0_or_1(batch: Batch) -> None:
    assert not batch.first.killed, run_report(batch.first)
    assert batch.first.returncode in (0, 1), run_report(batch.first)


def test_stdout_is_utf8_json_lines(batch: Batch) -> None:
    try:
        batch.first.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        pytest.fail(f"stdout is not valid UTF-8: {exc}")
    _, bad = json_lines(batch.first)
    assert not bad, f"{len(bad)} stdout line(s) are not JSON objects:" + listing(bad)


def test_no_traceback_on_stderr(batch: Batch) -> None:
    stderr = batch.first.stderr.decode("utf-8", "replace")
    at = stderr.find("Traceback")
    assert at < 0, f"stderr holds a traceback:\n{stderr[max(0, at - 200) : at + 4000]}"


def test_every_file_has_exactly_one_result_line(batch: Batch) -> None:
    found, strays = records_by_file(batch, batch.first)
    by_key = {os.fsencode(item.path): item for item in scanned_files(batch)}
    missing = [reproducer(by_key[key]) for key, records in found.items() if not records]
    repeated = [
        f"{len(records)}x {reproducer(by_key[key])}" for key, records in found.items() if len(records) > 1
    ]
    unknown = [f"path={record.get('path')!r} path_bytes={record.get('path_bytes')!r}" for record in strays]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(found)} file(s) have no result line:" + listing(missing))
    if repeated:
        problems.append(f"{len(repeated)} file(s) have several result lines:" + listing(repeated))
    if unknown:
        problems.append(f"{len(unknown)} result line(s) match no file:" + listing(unknown))
    if batch.first.killed or batch.first.returncode not in (0, 1):
        problems.append(run_report(batch.first))
    assert not problems, "\n".join(problems)


def test_errors_are_typed_sentences(batch: Batch) -> None:
    found, _ = records_by_file(batch, batch.first)
    by_key = {os.fsencode(item.path): item for item in scanned_files(batch)}
    bad = []
    for key, records in found.items():
        item = by_key[key]
        for record in records:
            error = record.get("error")
            if error is None:
                if record.get("verdict") == "error":
                    bad.append(f"verdict 'error' without an error object: {reproducer(item)}")
                continue
            kind = error.get("type") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            if not isinstance(kind, str) or not re.fullmatch(r"[a-z][a-z_]*", kind):
                bad.append(f"type {kind!r}: {reproducer(item)}")
            problem = message_problem(message, file_paths(item, records))
            if problem:
                bad.append(f"{problem} in [{kind}] {message!r}: {reproducer(item)}")
    assert not bad, f"{len(bad)} error(s) are not typed sentences:" + listing(bad)


def test_each_error_is_about_its_own_file(batch: Batch) -> None:
    """A message that names a file of the corpus names the file it reports on (no result is reused
    for another file: two symlinks to one device, say)."""
    found, _ = records_by_file(batch, batch.first)
    files = scanned_files(batch)
    by_key = {os.fsencode(item.path): item for item in files}
    all_paths = [str(item.path) for item in files]
    bad = []
    for key, records in found.items():
        own = file_paths(by_key[key], records)
        for record in records:
            message = str((record.get("error") or {}).get("message") or "")
            if not message or any(path and path in message for path in own):
                continue
            others = [path for path in all_paths if path in message]
            if others:
                name = Path(others[0]).name
                bad.append(f"names {name!a} in {message[-120:]!r}: {reproducer(by_key[key])}")
    assert not bad, f"{len(bad)} error(s) name another file:" + listing(bad)


def test_failed_checks_explain_themselves_in_sentences(batch: Batch) -> None:
    """An evidence source that could not do its work says why in words, not with an exception's text."""
    found, _ = records_by_file(batch, batch.first)
    by_key = {os.fsencode(item.path): item for item in scanned_files(batch)}
    bad = []
    for key, records in found.items():
        paths = file_paths(by_key[key], records)
        for record in records:
            for evidence in record.get("evidence") or []:
                finding, detail = evidence.get("finding"), evidence.get("detail")
                if "could not" not in str(finding):
                    continue
                for text in (finding, detail) if detail else (finding,):
                    problem = message_problem(text, paths)
                    if problem:
                        where = f"{evidence.get('source')}: {str(text)[:200]!r}"
                        bad.append(f"{problem} in {where}: {reproducer(by_key[key])}")
    assert not bad, f"{len(bad)} failed check(s) leak raw exception text:" + listing(bad)


def test_no_internal_errors(batch: Batch) -> None:
    found, _ = records_by_file(batch, batch.first)
    by_key = {os.fsencode(item.path): item for item in scanned_files(batch)}
    internal = [
        f"{(record.get('error') or {}).get('message')!r}: {reproducer(by_key[key])}"
        for key, records in found.items()
        for record in records
        if (record.get("error") or {}).get("type") == "internal_error"
    ]
    types = Counter(
        (record.get("error") or {}).get("type", "none") for records in found.values() for record in records
    )
    assert not internal, f"{len(internal)} internal error(s) (error types: {dict(types)}):" + listing(
        internal
    )


def test_memory_stays_bounded(batch: Batch) -> None:
    peak = max(batch.first.peak_rss_bytes, batch.second.peak_rss_bytes)
    assert peak < MAX_CHILD_RSS_BYTES, (
        f"peak resident memory of the scan and its workers: {peak / 2**20:.0f} MiB "
        f"(limit {MAX_CHILD_RSS_BYTES / 2**20:.0f} MiB)"
    )


def test_nothing_is_fetched(batch: Batch) -> None:
    assert not batch.fetched, "external XML entities were fetched:" + listing(batch.fetched)


def test_a_second_run_finds_every_file_in_the_store(batch: Batch) -> None:
    files = scanned_files(batch)
    problems = []
    if batch.second.killed or batch.second.returncode not in (0, 1):
        problems.append("second run: " + run_report(batch.second))
    stderr = batch.second.stderr.decode("utf-8", "replace")
    cached = re.search(r"\((\d+) from the store\)", stderr)
    # A path that cannot be stat-ed (dangling link, link loop) is analysed again on every run by design:
    # the file may be there next time. Every other file must come from the store.
    expected = sum(1 for item in files if _can_stat(item.path))
    if cached is None or int(cached.group(1)) != expected:
        said = cached.group(0) if cached else "no '(N from the store)' in its summary"
        problems.append(f"the second run should take {expected} results from the store; it says {said}")
    found, _ = records_by_file(batch, batch.second)
    missing = [reproducer(item) for item in files if not found[os.fsencode(item.path)]]
    if missing:
        problems.append(f"{len(missing)} file(s) have no result line in the second run:" + listing(missing))
    if problems:
        stamped = stamped_paths(batch)
        unstamped = [
            reproducer(item) for item in files if os.fsencode(os.path.abspath(item.path)) not in stamped
        ]
        problems.append("files the store has no stamp for (seen_files; a guess):" + listing(unstamped))
    assert not problems, "\n".join(problems)


def _can_stat(path: str) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def stamped_paths(batch: Batch) -> set[bytes]:
    """Paths the store remembers by stamp (its seen_files table, as text or raw bytes); empty when
    the store has no such table."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{batch.store}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT path FROM seen_files").fetchall()
    except sqlite3.Error:
        return set()
    return {os.fsencode(path) if isinstance(path, str) else bytes(path) for (path,) in rows}


def test_the_store_holds_a_result_for_every_file(batch: Batch) -> None:
    assert batch.export.returncode == 0, run_report(batch.export)
    records, bad = json_lines(batch.export)
    assert not bad, "export lines that are not JSON:" + listing(bad)
    stored_paths = {record_path_key(record) for record in records}
    stored_hashes = {record.get("sha256") for record in records if record.get("sha256")}
    first, _ = records_by_file(batch, batch.first)
    lost = []
    for item in scanned_files(batch):
        key = os.fsencode(item.path)
        hashes = {record.get("sha256") for record in first[key] if record.get("sha256")}
        # The store keeps one row per content (sha256), so identical files share a row.
        if key not in stored_paths and not hashes & stored_hashes:
            lost.append(reproducer(item))
    assert not lost, (
        f"{len(lost)} of {len(scanned_files(batch))} file(s) have no result in the store:" + listing(lost)
    )
