"""The REST API of `pixelsleuth serve` through FastAPI's TestClient (docs/deployment.md).

One app without the default detectors (provenance and pixel checks only: fast) serves most tests; apps
with small limits or API keys refuse before any analysis runs, so they start no worker process. One test
runs the default detectors.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is not installed")
pytest.importorskip("multipart", reason="the `serve` extra is not installed")

from fastapi.testclient import TestClient
from PIL import Image

from imagegen import encode, photo_like_rgb, png_declaring_size
from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import UsageError
from pixelsleuth.outputs.service import ServiceConfig, create_app
from pixelsleuth.outputs.service.guard import ConcurrencyLimiter, KeyChecker, RateLimiter, owner_id
from pixelsleuth.outputs.service.state import StateDB
from pixelsleuth.outputs.store import ResultStore

PNG = encode(photo_like_rgb(320, 200, seed=1), "PNG")
JPEG = encode(photo_like_rgb(256, 192, seed=2), "JPEG", quality=90)


def _client(tmp: Path, **fields: object) -> TestClient:
    config = ServiceConfig(store=tmp / "results.sqlite3", default_detectors=False, **fields)  # type: ignore[arg-type]
    return TestClient(create_app(config))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("service")
    (folder / "allowed").mkdir()
    (folder / "allowed" / "one.png").write_bytes(encode(photo_like_rgb(64, 48, seed=5), "PNG"))
    (folder / "allowed" / "two.jpg").write_bytes(encode(photo_like_rgb(64, 48, seed=6), "JPEG"))
    with _client(folder, rate_limit_per_minute=0, allowed_folders=(folder / "allowed",)) as test_client:
        test_client.folder = folder  # type: ignore[attr-defined]
        yield test_client


def _upload(
    client: TestClient,
    data: bytes,
    name: str = "photo.png",
    headers: dict[str, str] | None = None,
    **params: str,
):
    return client.post(
        "/v1/analyze", files={"file": (name, data, "image/png")}, params=params, headers=headers
    )


def _error(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == kind
    message = body["error"]["message"]
    assert isinstance(message, str) and len(message.split()) >= 4  # a sentence, not a code
    return message


def test_healthz_answers_without_analysing(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["analysis_version"].startswith("pixelsleuth-")


def test_analyze_returns_the_analysis_its_id_and_links(client: TestClient) -> None:
    response = _upload(client, PNG, "sub/dir/photo.png")
    assert response.status_code == 200, response.text
    body = response.json()
    identifier = body["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", identifier)
    analysis = body["analysis"]
    assert analysis["schema"] == "pixelsleuth.analysis/1"
    assert analysis["path"] == "photo.png"  # the client's name, never a server path
    assert analysis["format"] == "PNG" and (analysis["width"], analysis["height"]) == (320, 200)
    assert analysis["verdict"] in {"ai-generated", "manipulated", "authentic", "inconclusive"}
    assert analysis["explanation"]
    base = f"/v1/analyses/{identifier}"
    assert body["report_url"] == f"{base}/report" and body["image_url"] == f"{base}/image.jpg"
    assert body["overlays"] == {"ela": f"{base}/maps/ela.png", "noise": f"{base}/maps/noise.png"}
    assert client.get(base).json() == body
    again = _upload(client, PNG, "renamed.png").json()  # same bytes, same analysis: same id, from the store
    assert again["id"] == identifier


def test_a_jpeg_is_analysed_and_ids_differ_by_content(client: TestClient) -> None:
    body = _upload(client, JPEG, "photo.jpg").json()
    assert body["analysis"]["format"] == "JPEG"
    assert body["id"] != _upload(client, PNG).json()["id"]


def test_report_image_and_map_overlays(client: TestClient) -> None:
    wide = encode(photo_like_rgb(1800, 240, seed=3), "PNG")  # wider than the 1600 px display side
    body = _upload(client, wide, "wide.png").json()
    report = client.get(body["report_url"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in report.text.lower() and body["analysis"]["sha256"] in report.text
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    shown = Image.open(io.BytesIO(image.content))
    assert shown.format == "JPEG" and shown.size == (1600, 213)
    for name in ("ela", "noise"):
        overlay = client.get(body["overlays"][name])
        assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(overlay.content))
        assert picture.mode == "RGBA" and picture.size == shown.size
    _error(client.get(body["image_url"].replace("image.jpg", "maps/fused.png")), 404, "not_found")
    _error(client.get(body["image_url"].replace("image.jpg", "maps/bogus.png")), 404, "not_found")


def test_unknown_ids_are_404(client: TestClient) -> None:
    _error(client.get("/v1/analyses/" + "0" * 32), 404, "not_found")
    _error(client.get("/v1/analyses/not-an-id/report"), 404, "not_found")
    _error(client.get("/v1/batches/" + "0" * 20), 404, "not_found")
    _error(client.get("/no/such/route"), 404, "not_found")


def test_images_expire_after_the_retention_but_the_analysis_stays(client: TestClient) -> None:
    body = _upload(client, encode(photo_like_rgb(96, 64, seed=4), "PNG"), "soon-gone.png").json()
    assert client.get(body["image_url"]).status_code == 200
    service = client.app.state.service  # type: ignore[attr-defined]
    service.clock = lambda: time.time() + 2 * 3600  # two hours later (retention: 1 h)
    try:
        message = _error(client.get(body["image_url"]), 410, "image_expired")
        assert "no longer kept" in message
        _error(client.get(body["overlays"]["ela"]), 410, "image_expired")
        assert client.get(f"/v1/analyses/{body['id']}").json()["analysis"] == body["analysis"]
        assert client.get(body["report_url"]).status_code == 200  # the report, without pictures
    finally:
        service.clock = time.time


@pytest.mark.parametrize(
    ("data", "status", "kind"),
    [
        (b"", 400, "empty_file"),
        (b"%PDF-1.7\n" + b"0" * 200, 415, "not_an_image"),  # named photo.png, sent as image/png
        (b"PK\x03\x04" + b"\0" * 100, 415, "not_an_image"),
        (PNG[: len(PNG) // 2], 422, "truncated_image"),
        (png_declaring_size(20_000, 20_000), 413, "decompression_bomb"),  # 400 MP from a tiny file
    ],
    ids=["empty", "pdf", "zip", "truncated", "decompression-bomb"],
)
def test_malformed_uploads_get_a_typed_4xx(client: TestClient, data: bytes, status: int, kind: str) -> None:
    _error(_upload(client, data), status, kind)


def test_requests_without_a_file_are_refused(client: TestClient) -> None:
    _error(client.post("/v1/analyze", files={"other": ("x.png", PNG, "image/png")}), 400, "missing_file")
    _error(
        client.post("/v1/analyze", content=PNG, headers={"content-type": "image/png"}),
        415,
        "unsupported_media_type",
    )
    _error(
        client.post("/v1/analyze", params={"localize": "maybe"}, files={"file": ("a", PNG)}),
        422,
        "invalid_request",
    )


def test_uploads_over_the_limit_are_refused_while_streaming(tmp_path: Path) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(3 * 2**20)  # 3 MiB against a 64 KiB limit
    with _client(tmp_path, max_upload_bytes=64 * 1024) as client:
        assert "64 KiB" in _error(_upload(client, big), 413, "file_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"--b\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n"
            for _ in range(48):
                yield bytes(64 * 1024)

        streamed = client.post(
            "/v1/analyze", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        _error(streamed, 413, "file_too_large")


def test_api_keys_guard_every_v1_route(tmp_path: Path) -> None:
    with _client(tmp_path, api_keys=("first-key", "second-key")) as client:
        refused = client.get("/v1/analyses/" + "0" * 32)
        _error(refused, 401, "unauthorized")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        _error(_upload(client, PNG), 401, "unauthorized")
        wrong = {"Authorization": "Bearer first-keyX"}
        _error(client.get("/v1/batches/" + "0" * 20, headers=wrong), 401, "unauthorized")
        good = {"Authorization": "Bearer second-key"}
        _error(client.get("/v1/analyses/" + "0" * 32, headers=good), 404, "not_found")
        assert client.get("/healthz").status_code == 200  # operations stay open
        assert "second-key" not in client.get("/metrics").text


KEY_A, KEY_B, ADMIN = "alpha-7f3c9e1d-key", "bravo-52ab80c4-key", "admin-e91d0b37-key"
AS_A, AS_B = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app with two API keys and an admin key."""
    folder = tmp_path_factory.mktemp("keyed")
    with _client(folder, api_keys=(KEY_A, KEY_B), admin_keys=(ADMIN,), rate_limit_per_minute=0) as client:
        client.store = folder / "results.sqlite3"  # type: ignore[attr-defined]
        yield client


def _urls_of(body: dict) -> list[str]:
    """Every GET address of an analysis: the JSON, its report, its image and its maps."""
    return [f"/v1/analyses/{body['id']}", body["report_url"], body["image_url"], *body["overlays"].values()]


def _finished_batch(client: TestClient, headers: dict[str, str], data: bytes) -> dict:
    files = [("files", ("batch.png", data, "image/png"))]
    created = client.post("/v1/batches", files=files, headers=headers)
    assert created.status_code == 202, created.text
    status = client.get(created.json()["status_url"], params={"wait": 30}, headers=headers)
    assert status.status_code == 200 and status.json()["status"] == "done", status.text
    return status.json()


def _hidden(client: TestClient, url: str, identifier: str, headers: dict[str, str]) -> None:
    """`url` answers `headers` with the very 404 an id that was never created gets, but for the id."""
    never = "f" * len(identifier)
    hidden = client.get(url, headers=headers)
    _error(hidden, 404, "not_found")
    assert (
        hidden.text.replace(identifier, never)
        == client.get(url.replace(identifier, never), headers=headers).text
    )


def test_a_key_reads_only_its_own_analyses_and_batches(keyed: TestClient) -> None:
    mine = _upload(keyed, encode(photo_like_rgb(128, 96, seed=21), "PNG"), "mine.png", headers=AS_A)
    assert mine.status_code == 200, mine.text
    batch = _finished_batch(keyed, AS_A, encode(photo_like_rgb(128, 96, seed=22), "PNG"))
    in_batch = keyed.get(batch["results"][0]["url"], headers=AS_A).json()
    urls = _urls_of(mine.json()) + _urls_of(in_batch)
    batch_url = f"/v1/batches/{batch['id']}"
    for url in urls:
        assert keyed.get(url, headers=AS_A).status_code == 200, url
        assert keyed.get(url, headers=AS_ADMIN).status_code == 200, url
        _hidden(keyed, url, url.split("/")[3], AS_B)
    assert keyed.get(batch_url, headers=AS_A).json() == batch
    assert keyed.get(batch_url, headers=AS_ADMIN).json() == batch
    _hidden(keyed, batch_url, batch["id"], AS_B)
    _error(keyed.get(batch_url, params={"wait": 30}, headers=AS_B), 404, "not_found")


def test_the_store_holds_a_fingerprint_of_the_key_never_the_key(keyed: TestClient) -> None:
    _upload(keyed, encode(photo_like_rgb(128, 96, seed=23), "PNG"), headers=AS_A)
    _finished_batch(keyed, AS_A, encode(photo_like_rgb(128, 96, seed=24), "PNG"))
    store = keyed.store  # type: ignore[attr-defined]
    with sqlite3.connect(store) as db:
        owners = {row[0] for row in db.execute("SELECT owner FROM service_results")}
        owners |= {row[0] for row in db.execute("SELECT owner FROM service_batches")}
    assert owner_id(KEY_A) in owners and "" not in owners
    assert all(re.fullmatch(r"[0-9a-f]{16}", owner) for owner in owners)
    for path in store.parent.glob(store.name + "*"):  # the database and its WAL
        if path.is_file():
            assert not any(key.encode() in path.read_bytes() for key in (KEY_A, KEY_B, ADMIN)), path


def test_the_same_image_under_two_keys_gets_two_private_results(keyed: TestClient) -> None:
    image = encode(photo_like_rgb(128, 96, seed=25), "PNG")
    first = _upload(keyed, image, "a-private-name.png", headers=AS_A).json()
    second = _upload(keyed, image, "b.png", headers=AS_B)
    assert second.status_code == 200, second.text
    theirs = second.json()
    assert theirs["id"] != first["id"] and theirs["analysis"]["path"] == "b.png"  # not A's file name
    assert theirs["analysis"]["sha256"] == first["analysis"]["sha256"]
    assert keyed.get(f"/v1/analyses/{theirs['id']}", headers=AS_B).json() == theirs
    for url in _urls_of(theirs)[1:]:
        assert keyed.get(url, headers=AS_B).status_code == 200, url
    _error(keyed.get(f"/v1/analyses/{first['id']}", headers=AS_B), 404, "not_found")
    _error(keyed.get(f"/v1/analyses/{theirs['id']}", headers=AS_A), 404, "not_found")
    assert keyed.get(f"/v1/analyses/{first['id']}", headers=AS_A).json()["analysis"]["path"] == (
        "a-private-name.png"
    )
    batch = _finished_batch(keyed, AS_B, image)
    assert batch["results"][0]["id"] == theirs["id"]  # B's batch names B's own result
    with sqlite3.connect(keyed.store) as db:  # type: ignore[attr-defined]
        count = db.execute(
            "SELECT COUNT(*) FROM analyses WHERE sha256 = ?", (first["analysis"]["sha256"],)
        ).fetchone()[0]
    assert count == 1  # analysed once, shared by both ids


def test_without_keys_results_keep_their_old_ids_and_no_owner(client: TestClient) -> None:
    body = _upload(client, encode(photo_like_rgb(128, 96, seed=26), "PNG")).json()
    version = body["analysis"]["analysis_version"]
    old_id = hashlib.sha256(f"{body['analysis']['sha256']}\n{version}".encode()).hexdigest()[:32]
    assert body["id"] == old_id
    service = client.app.state.service  # type: ignore[attr-defined]
    with sqlite3.connect(service.config.store) as db:
        owner = db.execute("SELECT owner FROM service_results WHERE id = ?", (old_id,)).fetchone()[0]
    assert owner == ""


# The service's tables as they were before results had owners.
_OLD_SCHEMA = """
CREATE TABLE service_results (
    id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, analysis_version TEXT NOT NULL, image_path TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE service_batches (
    id TEXT PRIMARY KEY, localize INTEGER NOT NULL, analysis_version TEXT NOT NULL, total INTEGER NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE service_batch_items (
    batch_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, result_id TEXT, verdict TEXT, score REAL, error TEXT,
    PRIMARY KEY (batch_id, position)
);
"""


def test_a_store_from_before_owners_is_migrated_and_its_rows_need_an_admin(tmp_path: Path) -> None:
    store = tmp_path / "results.sqlite3"
    sha256, version, old_id, job = "c" * 64, "legacy-version", "d" * 32, "e" * 20
    with ResultStore(store) as results:
        results.put(Analysis(path="old.png", sha256=sha256, verdict="authentic"), version)
    with sqlite3.connect(store) as db:
        db.executescript(_OLD_SCHEMA)
        db.execute("INSERT INTO service_results VALUES (?, ?, ?, NULL, 1.0)", (old_id, sha256, version))
        db.execute("INSERT INTO service_batches VALUES (?, 0, ?, 1, 'done', 1.0, 2.0)", (job, version))
        db.execute(
            "INSERT INTO service_batch_items VALUES (?, 0, 'old.png', '/gone/old.png', 1, ?, 'authentic', "
            "NULL, NULL)",
            (job, old_id),
        )
    addresses = [f"/v1/analyses/{old_id}", f"/v1/batches/{job}"]
    with _client(tmp_path, api_keys=(KEY_A,), admin_keys=(ADMIN,)) as client:
        for url in addresses:
            _error(client.get(url, headers=AS_A), 404, "not_found")
        legacy = client.get(addresses[0], headers=AS_ADMIN)
        assert legacy.status_code == 200 and legacy.json()["analysis"]["path"] == "old.png"
        batch = client.get(addresses[1], headers=AS_ADMIN)
        assert batch.status_code == 200 and batch.json()["results"][0]["id"] == old_id
    with sqlite3.connect(store) as db:
        results_columns = {row[1] for row in db.execute("PRAGMA table_info(service_results)")}
        batches_columns = {row[1] for row in db.execute("PRAGMA table_info(service_batches)")}
        owners = db.execute("SELECT owner FROM service_results WHERE id = ?", (old_id,)).fetchone()
    assert {"owner", "name"} <= results_columns and "owner" in batches_columns and owners == ("",)
    with _client(tmp_path) as client:  # opened again (nothing left to migrate), without keys
        assert [client.get(url).status_code for url in addresses] == [200, 200]


def test_a_batch_resumed_after_a_restart_stays_its_owners(tmp_path: Path) -> None:
    source = tmp_path / "left-over.png"
    source.write_bytes(encode(photo_like_rgb(128, 96, seed=27), "PNG"))
    state = StateDB(tmp_path / "results.sqlite3")  # a batch the last server never finished
    items = [("left-over.png", str(source))]
    job = asyncio.run(
        state.call(lambda: state.create_batch(items, localize=False, version="v", owner=owner_id(KEY_A)))
    )
    state.close()
    with _client(tmp_path, api_keys=(KEY_A, KEY_B), rate_limit_per_minute=0) as client:
        _error(client.get(f"/v1/batches/{job}", headers=AS_B), 404, "not_found")
        status = client.get(f"/v1/batches/{job}", params={"wait": 30}, headers=AS_A).json()
        assert status["status"] == "done" and status["failed"] == 0
        url = status["results"][0]["url"]
        assert client.get(url, headers=AS_A).json()["analysis"]["path"] == "left-over.png"
        _error(client.get(url, headers=AS_B), 404, "not_found")


def test_admin_keys_from_the_environment_and_owner_ids() -> None:
    config = ServiceConfig.from_env({"PIXELSLEUTH_ADMIN_KEYS": " root , ops "})
    assert config.admin_keys == ("root", "ops") and config.api_keys == () and config.keyed
    assert not ServiceConfig().keyed
    with pytest.raises(UsageError, match="empty"):
        ServiceConfig(admin_keys=("",))
    first, second = KeyChecker(("a", "b")), KeyChecker(("b", "a"))
    assert first.caller("Bearer b") is not None and second.caller("Bearer b") is not None
    assert (
        first.caller("Bearer b").owner == second.caller("Bearer b").owner == owner_id("b")
    )  # not by position
    assert owner_id("a") != owner_id("b") and re.fullmatch(r"[0-9a-f]{16}", owner_id("a"))
    both = KeyChecker(("k",), admin_keys=("k",)).caller("Bearer k")
    assert both is not None and both.reads_all and both.label == "admin-1"
    plain = KeyChecker(("k",)).caller("Bearer k")
    assert plain is not None and not plain.reads_all and not plain.can_read("")


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with _client(tmp_path, rate_limit_per_minute=2) as client:
        missing = "/v1/analyses/" + "0" * 32
        assert [client.get(missing).status_code for _ in range(2)] == [404, 404]
        limited = client.get(missing)
        _error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1


def test_limiters_and_keys_in_isolation() -> None:
    clock = [0.0]
    bucket = RateLimiter(per_minute=60, clock=lambda: clock[0])
    assert all(bucket.take("a") == 0.0 for _ in range(60)) and bucket.take("a") > 0
    assert bucket.take("b") == 0.0  # per client
    clock[0] += 1.0
    assert bucket.take("a") == 0.0  # one token back per second
    gate = ConcurrencyLimiter(1)
    assert gate.acquire("a") and not gate.acquire("a") and gate.acquire("b")
    gate.release("a")
    assert gate.acquire("a")
    assert (
        KeyChecker(("k",)).identify("bearer k") == "key-1" and KeyChecker(("k",)).identify("Basic k") is None
    )


def test_analysis_timeout_is_504(tmp_path: Path) -> None:
    with _client(tmp_path, analysis_timeout_s=0.001) as client:
        assert "budget" in _error(_upload(client, PNG), 504, "timeout")


def test_batch_of_uploads_reports_progress_and_results(client: TestClient) -> None:
    files = [
        ("files", ("a.png", encode(photo_like_rgb(80, 60, seed=11), "PNG"), "image/png")),
        ("files", ("b.jpg", encode(photo_like_rgb(80, 60, seed=12), "JPEG"), "image/jpeg")),
        ("files", ("notes.txt", b"just some text, not an image at all\n", "text/plain")),
    ]
    created = client.post("/v1/batches", files=files)
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["total"] == 3 and job["status_url"] == f"/v1/batches/{job['id']}"
    status = client.get(job["status_url"], params={"wait": 30}).json()
    assert status["status"] == "done" and (status["done"], status["total"], status["failed"]) == (3, 3, 1)
    by_name = {item["name"]: item for item in status["results"]}
    assert by_name["notes.txt"]["error"]["type"] == "not_an_image" and by_name["notes.txt"]["id"] is None
    for name in ("a.png", "b.jpg"):
        fetched = client.get(by_name[name]["url"]).json()
        assert fetched["analysis"]["verdict"] == by_name[name]["verdict"]


def test_folder_batches_only_for_allowed_folders(client: TestClient) -> None:
    folder = client.folder  # type: ignore[attr-defined]
    created = client.post("/v1/batches", json={"folder": str(folder / "allowed")})
    assert created.status_code == 202, created.text
    status = client.get(created.json()["status_url"], params={"wait": 30}).json()
    assert sorted(item["name"] for item in status["results"]) == ["one.png", "two.jpg"]
    assert status["failed"] == 0
    _error(client.post("/v1/batches", json={"folder": str(folder)}), 403, "folder_not_allowed")
    _error(client.post("/v1/batches", json={"folder": "/etc"}), 403, "folder_not_allowed")
    _error(client.post("/v1/batches", json={"url": "http://127.0.0.1/"}), 400, "invalid_request")


def _parse_prometheus(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    line_pattern = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = line_pattern.match(line)
        assert match, f"not Prometheus text: {line!r}"
        samples[line.rsplit(" ", 1)[0]] = float(match.group(4))
    return samples


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = _parse_prometheus(response.text)
    assert samples['pixelsleuth_http_requests_total{route="/healthz",method="GET",status="200"}'] >= 1
    assert 'pixelsleuth_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"}' in samples
    assert "pixelsleuth_analysis_queue_depth" in samples and "pixelsleuth_analyses_in_flight" in samples


def test_docs_and_the_start_page(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/analyze", "/v1/batches", "/v1/analyses/{identifier}"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and page.text.strip()


def test_config_from_environment() -> None:
    config = ServiceConfig.from_env(
        {
            "PIXELSLEUTH_API_KEYS": "a,b",
            "PIXELSLEUTH_LOCALIZE": "yes",
            "PIXELSLEUTH_MAX_UPLOAD_BYTES": "1000",
        },
        workers=3,
    )
    assert (config.api_keys, config.localize, config.max_upload_bytes, config.workers) == (
        ("a", "b"),
        True,
        1000,
        3,
    )
    with pytest.raises(UsageError, match="PIXELSLEUTH_WORKERS"):
        ServiceConfig.from_env({"PIXELSLEUTH_WORKERS": "many"})


def test_default_detectors_give_a_calibrated_verdict(tmp_path: Path) -> None:
    config = ServiceConfig(store=tmp_path / "results.sqlite3", rate_limit_per_minute=0)
    with TestClient(create_app(config)) as client:
        body = _upload(client, encode(photo_like_rgb(256, 256, seed=9), "JPEG", quality=92), "p.jpg").json()
    analysis = body["analysis"]
    assert any(
        item["source"].startswith("detector:") or item["source"] == "fused" for item in analysis["evidence"]
    )
    assert analysis["decided_by"] and analysis["operating_point"] is not None
