"""The REST API of `pixelsleuth serve` through FastAPI's TestClient (docs/deployment.md).

One app without the default detectors (provenance and pixel checks only: fast) serves most tests; apps
with small limits or API keys refuse before any analysis runs, so they start no worker process. One test
runs the default detectors.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is not installed")
pytest.importorskip("multipart", reason="the `serve` extra is not installed")

from fastapi.testclient import TestClient
from PIL import Image

from imagegen import encode, photo_like_rgb, png_declaring_size
from pixelsleuth.errors import UsageError
from pixelsleuth.outputs.service import ServiceConfig, create_app
from pixelsleuth.outputs.service.guard import ConcurrencyLimiter, KeyChecker, RateLimiter

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


def _upload(client: TestClient, data: bytes, name: str = "photo.png", **params: str):
    return client.post("/v1/analyze", files={"file": (name, data, "image/png")}, params=params)


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
