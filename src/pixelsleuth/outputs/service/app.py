"""The REST API of `pixelsleuth serve` (FastAPI): analyse uploads, keep results, run batches.

See docs/deployment.md for configuration, deployment and the security model. FastAPI is imported only
here, so the rest of pixelsleuth never pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelsleuth import __version__
from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.intake import IntakeLimits
from pixelsleuth.intake.sniff import FORMAT_LABELS, SUPPORTED_FORMATS, cut_signature, sniff
from pixelsleuth.outputs.collect import collect_paths
from pixelsleuth.outputs.report.visuals import has_localization
from pixelsleuth.outputs.service.config import ServiceConfig
from pixelsleuth.outputs.service.engine import AnalysisPool
from pixelsleuth.outputs.service.guard import (
    ApiError,
    BodyLimitMiddleware,
    Caller,
    ConcurrencyLimiter,
    KeyChecker,
    RateLimiter,
    retry_after,
)
from pixelsleuth.outputs.service.media import (
    MAP_NAMES,
    PictureUnavailable,
    display_jpeg,
    load_checked,
    map_png,
)
from pixelsleuth.outputs.service.metrics import Metrics
from pixelsleuth.outputs.service.state import BatchItem, ImageKeeper, StateDB, StoredResult

STATIC_DIR = Path(__file__).parent / "static"
_MULTIPART_SLACK = 64 * 1024  # multipart headers and boundaries around the file itself
_SWEEP_EVERY_S = 60.0
_MAX_WAIT_S = 30.0
_ID = re.compile(r"[0-9a-f]{32}")
_JOB = re.compile(r"[0-9a-f]{20}")
# Error types of an analysis and the HTTP status each answers with.
_ERROR_STATUS = {
    "empty_file": 400,
    "file_too_large": 413,
    "decompression_bomb": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
    "truncated_image": 422,
    "corrupt_image": 422,
    "file_unreadable": 422,
    "analysis_crashed": 422,
    "timeout": 504,
}
_FILE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
    },
}
_BATCH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        },
        "application/json": {
            "schema": {"type": "object", "properties": {"folder": {"type": "string"}}, "required": ["folder"]}
        },
    },
}
log = logging.getLogger("pixelsleuth.serve")


def _human(size: int) -> str:
    return f"{size / 2**20:.3g} MiB" if size >= 2**20 else f"{size / 1024:.3g} KiB"


def _safe_name(name: str | None) -> str:
    """The client's file name, reduced to its last component (never a server path)."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    return base[:200] or "upload"


class Service:
    """The service's state: the analysis pool, the database, kept images, limits and metrics."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.limits = IntakeLimits(max_pixels=config.max_pixels, max_file_bytes=config.max_upload_bytes)
        self.keys = KeyChecker(config.api_keys, config.admin_keys)
        self.rate = RateLimiter(config.rate_limit_per_minute)
        self.concurrency = ConcurrencyLimiter(config.max_concurrent_per_key)
        self.metrics = Metrics()
        self.clock = time.time  # tests move it forward to expire uploads
        self.pool: AnalysisPool | None = None
        self.db: StateDB | None = None
        self.images: ImageKeeper | None = None
        self.pictures = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pictures")
        self.tasks: set[asyncio.Task] = set()
        self.progress: asyncio.Condition | None = None  # notified whenever a batch item is recorded
        self.started = time.time()

    # --- lifecycle ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self.db = StateDB(self.config.store)
        self.images = ImageKeeper(self.config.uploads, self.config.upload_retention_s, clock=self._now)
        self.pool = AnalysisPool(self.config)
        self.progress = asyncio.Condition()
        for job in await self.db.call(self.db.unfinished_batches):
            log.info("resuming batch %s", job.id)
            self._spawn(self.run_batch(job.id, job.localize, job.owner))
        self._spawn(self._sweeper())
        try:
            yield
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.pool.close()
            self.pictures.shutdown(wait=False, cancel_futures=True)
            self.db.close()

    def _now(self) -> float:
        return self.clock()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _sweeper(self) -> None:
        assert self.db is not None and self.images is not None
        while True:
            try:
                keep = await self.db.call(self.db.pending_sources)
                removed = await asyncio.get_running_loop().run_in_executor(None, self.images.sweep, keep)
                if removed:
                    log.info("removed %d expired upload(s)", removed)
            except Exception as exc:  # a sweep that fails is tried again next time
                log.warning("sweeping expired uploads failed: %r", exc)
            await asyncio.sleep(min(_SWEEP_EVERY_S, max(self.config.upload_retention_s, 1.0)))

    # --- uploads -----------------------------------------------------------------------------------

    async def receive_upload(self, upload: UploadFile, *, check: bool) -> tuple[str, Path, str]:
        """Save an upload under its SHA-256; returns (client name, kept path, sha256).

        With `check`, refuse it (typed 4xx) when empty, too large or, by its bytes, not an image.
        """
        assert self.images is not None
        images = self.images
        limit = self.config.max_upload_bytes

        def save() -> tuple[Path, str]:
            handle, temporary = images.temporary()
            digest = hashlib.sha256()
            size = 0
            head = b""
            try:
                with os.fdopen(handle, "wb") as out:
                    upload.file.seek(0)
                    while chunk := upload.file.read(1 << 20):
                        size += len(chunk)
                        if size > limit:
                            raise ApiError(
                                413,
                                "file_too_large",
                                f"the upload is larger than this server's limit of {_human(limit)}",
                            )
                        if len(head) < 65536:
                            head += chunk[: 65536 - len(head)]
                        digest.update(chunk)
                        out.write(chunk)
                if check:
                    _check_head(head, size)
                return images.keep(temporary, digest.hexdigest()), digest.hexdigest()
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise

        kept, sha256 = await asyncio.get_running_loop().run_in_executor(None, save)
        return _safe_name(upload.filename), kept, sha256

    # --- results ---------------------------------------------------------------------------------

    def payload(self, stored: StoredResult) -> dict[str, Any]:
        base = f"/v1/analyses/{stored.id}"
        overlays = {name: f"{base}/maps/{name}.png" for name in ("ela", "noise")}
        if has_localization(stored.record):
            overlays["fused"] = f"{base}/maps/fused.png"
        expires = None
        if self.images is not None and self.images.is_upload(stored.image_path):
            path = Path(stored.image_path or "")
            with contextlib.suppress(OSError):
                expires = path.stat().st_mtime + self.config.upload_retention_s
        return {
            "id": stored.id,
            "analysis": stored.record,
            "report_url": f"{base}/report",
            "image_url": f"{base}/image.jpg",
            "image_expires_at": None if expires is None else round(expires, 3),
            "overlays": overlays,
        }

    async def analyze_kept(
        self, name: str, kept: Path, sha256: str | None, *, localize: bool, owner: str
    ) -> tuple[Analysis, str | None]:
        """The stored result of this image, or a new analysis stored now, under an id of `owner`'s own;
        returns (analysis, id or None)."""
        assert self.db is not None and self.pool is not None
        db, pool = self.db, self.pool
        version = pool.version(localize=localize)
        if sha256 is not None:
            known = await db.call(db.find, sha256, version)
            if known is not None:
                identifier = await db.call(
                    lambda: db.remember(sha256, version, str(kept), owner=owner, name=name)
                )
                return known, identifier
        try:
            analysis = await pool.analyze(kept, localize=localize)
        except PixelsleuthError as exc:  # the worker process could not start
            raise ApiError(503, "engine_unavailable", exc.message, headers=retry_after(30)) from None
        self.metrics.analysed(analysis.verdict)
        analysis.path = name
        if analysis.error is not None or analysis.sha256 is None:
            return analysis, None
        identifier = await db.call(lambda: db.save(analysis, version, str(kept), owner=owner))
        return analysis, identifier

    async def stored(self, identifier: str, caller: Caller) -> StoredResult:
        """The result with this id, or 404 when there is none or `caller` may not read it (the same
        answer, so that a key cannot learn which ids exist)."""
        assert self.db is not None
        found = await self.db.call(self.db.result, identifier) if _ID.fullmatch(identifier) else None
        if found is None or not caller.can_read(found.owner):
            raise ApiError(
                404, "not_found", f"there is no analysis with id {identifier[:64]!r} on this server"
            )
        return found

    def image_of(self, stored: StoredResult) -> Path:
        """The kept image of a result, or 410 when the retention has passed."""
        assert self.images is not None
        path = Path(stored.image_path) if stored.image_path else None
        gone = path is None or (
            self.images.expired(path) if self.images.is_upload(stored.image_path) else not path.is_file()
        )
        if gone:
            hours = self.config.upload_retention_s / 3600
            raise ApiError(
                410,
                "image_expired",
                f"the image of this analysis is no longer kept (this server keeps uploads for {hours:g} "
                "hours); the analysis itself is still available without its pictures",
            )
        assert path is not None
        return path

    async def picture(self, stored: StoredResult, name: str) -> bytes:
        """The display JPEG (`name` "image.jpg") or a map overlay ("ela.png" …), cached beside the upload."""
        assert self.images is not None
        path = self.image_of(stored)
        sha256 = stored.record.get("sha256")
        cache = self.images.derived_path(str(sha256), name) if self.images.is_upload(str(path)) else None

        def make() -> bytes:
            if cache is not None and cache.is_file():
                return cache.read_bytes()
            image = load_checked(path, sha256, self.limits)
            data = display_jpeg(image.rgb) if name == "image.jpg" else map_png(image.rgb, name.split(".")[0])
            if cache is not None:
                partial = cache.with_name(cache.name + ".partial")
                partial.write_bytes(data)
                os.replace(partial, cache)
            return data

        try:
            return await asyncio.get_running_loop().run_in_executor(self.pictures, make)
        except PictureUnavailable as exc:
            raise ApiError(410, "image_unavailable", exc.message) from None

    async def report(self, stored: StoredResult) -> str:
        from pixelsleuth.outputs.report import ReportOptions, render_image_report

        try:
            image: Path | None = self.image_of(stored)
        except ApiError:
            image = None
        options = ReportOptions(limits=self.limits)
        return await asyncio.get_running_loop().run_in_executor(
            self.pictures, lambda: render_image_report(stored.record, image, options=options)
        )

    # --- batches ---------------------------------------------------------------------------------

    async def run_batch(self, batch_id: str, localize: bool, owner: str) -> None:
        """Analyse every pending item of a batch, `workers` at a time, recording each exactly once under
        the batch's owner."""
        assert self.db is not None and self.pool is not None
        db = self.db
        items = await db.call(db.pending_items, batch_id)
        gate = asyncio.Semaphore(self.config.workers)

        async def one(item: BatchItem) -> None:
            async with gate:
                source = Path(item.source)
                sha256 = source.name if self.images and self.images.is_upload(item.source) else None
                analysis, identifier = await self.analyze_kept(
                    item.name, source, sha256, localize=localize, owner=owner
                )
                await db.call(
                    lambda: db.finish_item(
                        item, identifier=identifier, analysis=analysis, error=analysis.error
                    )
                )

        await asyncio.gather(*(one(item) for item in items))
        await db.call(db.finish_batch, batch_id)
        await self.notify()

    async def notify(self) -> None:
        if self.progress is not None:
            async with self.progress:
                self.progress.notify_all()

    async def wait_for_progress(self, seconds: float) -> None:
        """Return when a batch item is recorded, or after `seconds`."""
        assert self.progress is not None
        async with self.progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), max(seconds, 0.0))


def _check_head(head: bytes, size: int) -> None:
    """Typed refusals from the upload's first bytes: empty, truncated header, or not an image."""
    if size == 0:
        raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
    sniffed = sniff(head)
    if sniffed.category == "unknown" and (cut := cut_signature(head)) is not None:
        raise ApiError(
            422, "truncated_image", f"truncated {FORMAT_LABELS[cut]}: the data ends inside the file header"
        )
    if sniffed.category == "unsupported_image":
        readable = ", ".join(FORMAT_LABELS[kind] for kind in SUPPORTED_FORMATS)
        raise ApiError(
            415,
            "unsupported_format",
            f"unsupported image format: {sniffed.description}; this server reads {readable}",
        )
    if not sniffed.is_supported_image:
        looks = sniffed.description if sniffed.category == "unknown" else f"looks like {sniffed.description}"
        raise ApiError(415, "not_an_image", f"the upload is not an image: {looks}")


def _route_of(request_scope: dict) -> str:
    route = request_scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(unmatched)"


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI application of `pixelsleuth serve` for `config` (see `ServiceConfig` for the fields).

    Worker processes start on the first analysis; the store is opened when the app starts (lifespan),
    and unfinished batches resume then.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> with TestClient(create_app(ServiceConfig(store="s.sqlite3"))) as client:  # doctest: +SKIP
        ...     client.get("/healthz").json()["status"]
        'ok'
    """
    service = Service(config)
    app = FastAPI(
        title="pixelsleuth",
        version=__version__,
        description="Was this image made or edited by a generative model, where, and why do we think so?",
        lifespan=service.lifespan,
        docs_url="/docs",
    )
    app.state.service = service

    # --- errors: always {"error": {"type", "message"}} ---------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: "there is nothing at this address; see /docs for the API",
            405: f"the method {request.method} is not allowed here; see /docs for the API",
        }
        message = messages.get(exc.status_code) or str(exc.detail or "the request could not be handled")
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return JSONResponse(
            {"error": {"type": kind, "message": message}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "body"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        message = "the request is not valid: " + "; ".join(problems)
        return JSONResponse({"error": {"type": "invalid_request", "message": message}}, status_code=422)

    # --- middleware: body limit (inner), metrics (outer) --------------------------------------------

    def body_limit(path: str) -> int:
        if path.rstrip("/") == "/v1/batches":
            return config.max_batch_bytes
        return config.max_upload_bytes + _MULTIPART_SLACK

    def too_large(limit: int) -> ApiError:
        if limit == config.max_upload_bytes + _MULTIPART_SLACK:
            limit = config.max_upload_bytes  # the limit a person set, not the multipart allowance
        return ApiError(
            413, "file_too_large", f"the request is larger than this server's limit of {_human(limit)}"
        )

    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit, too_large=too_large)

    @app.middleware("http")
    async def _measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            service.metrics.observe(
                _route_of(request.scope), request.method, status, time.perf_counter() - started
            )

    # --- guards for /v1 ------------------------------------------------------------------------------

    async def client_of(request: Request) -> Caller:
        if service.keys.enabled:
            client = service.keys.caller(request.headers.get("authorization"))
            if client is None:
                raise ApiError(
                    401,
                    "unauthorized",
                    "this server needs an API key: send it as the header 'Authorization: Bearer KEY'",
                    headers={"WWW-Authenticate": 'Bearer realm="pixelsleuth"'},
                )
        else:  # no keys: no owners, every client reads everything
            client = Caller("addr-" + (request.client.host if request.client else "unknown"), "", True)
        wait = service.rate.take(client.label)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests: this server allows {config.rate_limit_per_minute} per minute per "
                f"client; try again in {max(1, round(wait))} seconds",
                headers=retry_after(wait),
            )
        return client

    v1 = APIRouter(prefix="/v1", dependencies=[])

    async def form_of(request: Request, max_files: int) -> Any:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(
                415,
                "unsupported_media_type",
                "send the image as multipart/form-data with a field named 'file'",
            )
        return await request.form(max_files=max_files, max_fields=20)

    @v1.post("/analyze", openapi_extra={"requestBody": _FILE_BODY}, summary="Analyse one image")
    async def analyze(
        request: Request, localize: bool | None = None, client: Caller = Depends(client_of)
    ) -> Any:
        """Upload one image (multipart field `file`); answers with its analysis and links to its pictures."""
        form = await form_of(request, max_files=1)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_file", "the form has no file in a field named 'file'")
        if not service.concurrency.acquire(client.label):
            raise ApiError(
                429,
                "too_many_concurrent",
                f"this client already has {config.max_concurrent_per_key} analyses running; wait for one "
                "to finish",
                headers=retry_after(2),
            )
        try:
            name, kept, sha256 = await service.receive_upload(upload, check=True)
            flag = config.localize if localize is None else localize
            analysis, identifier = await service.analyze_kept(
                name, kept, sha256, localize=flag, owner=client.owner
            )
        finally:
            service.concurrency.release(client.label)
            await form.close()
        if identifier is None:
            error = analysis.error or {"type": "internal_error", "message": "the analysis failed"}
            assert service.images is not None
            if error.get("type") not in ("timeout", "analysis_crashed"):
                service.images.forget(sha256)
            status = _ERROR_STATUS.get(error.get("type", ""), 500)
            raise ApiError(status, error.get("type", "internal_error"), error.get("message", "failed"))
        return service.payload(await service.stored(identifier, client))

    @v1.get("/analyses/{identifier}", summary="A stored analysis")
    async def get_analysis(identifier: str, client: Caller = Depends(client_of)) -> Any:
        return service.payload(await service.stored(identifier, client))

    @v1.get("/analyses/{identifier}/report", response_class=HTMLResponse, summary="The HTML report")
    async def get_report(identifier: str, client: Caller = Depends(client_of)) -> HTMLResponse:
        html = await service.report(await service.stored(identifier, client))
        return HTMLResponse(html)

    @v1.get("/analyses/{identifier}/image.jpg", response_class=Response, summary="The display image")
    async def get_image(identifier: str, client: Caller = Depends(client_of)) -> Response:
        data = await service.picture(await service.stored(identifier, client), "image.jpg")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @v1.get("/analyses/{identifier}/maps/{name}.png", response_class=Response, summary="A map overlay")
    async def get_map(identifier: str, name: str, client: Caller = Depends(client_of)) -> Response:
        stored = await service.stored(identifier, client)
        if name not in MAP_NAMES or (name == "fused" and not has_localization(stored.record)):
            available = "ela, noise" + (", fused" if has_localization(stored.record) else "")
            raise ApiError(
                404, "not_found", f"there is no map {name[:40]!r} for this analysis; try {available}"
            )
        data = await service.picture(stored, f"{name}.png")
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @v1.post("/batches", status_code=202, openapi_extra={"requestBody": _BATCH_BODY}, summary="Start a batch")
    async def create_batch(
        request: Request, localize: bool | None = None, client: Caller = Depends(client_of)
    ) -> Any:
        """Many images as multipart files (any field name), or `{"folder": PATH}` for an allowed folder."""
        assert service.db is not None and service.pool is not None
        flag = config.localize if localize is None else localize
        items: list[tuple[str, str]] = []
        if request.headers.get("content-type", "").startswith("application/json"):
            items = _folder_items(config, await _json_body(request))
        else:
            form = await form_of(request, max_files=config.max_batch_files)
            try:
                for _, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        name, kept, _ = await service.receive_upload(value, check=False)
                        items.append((name, str(kept)))
            finally:
                await form.close()
        if not items:
            raise ApiError(400, "empty_batch", "the batch holds no files")
        version = service.pool.version(localize=flag)
        batch_id = await service.db.call(
            lambda: service.db.create_batch(  # type: ignore[union-attr]
                items, localize=flag, version=version, owner=client.owner
            )
        )
        service._spawn(service.run_batch(batch_id, flag, client.owner))
        return {"id": batch_id, "status_url": f"/v1/batches/{batch_id}", "total": len(items)}

    @v1.get("/batches/{batch_id}", summary="A batch's progress and results so far")
    async def get_batch(
        batch_id: str, wait: float = 0.0, min_done: int | None = None, client: Caller = Depends(client_of)
    ) -> Any:
        """Progress (`done` of `total`) and the results so far. With `wait` (seconds, at most 30) the answer
        waits until `min_done` items are done (default: all) or the batch finished."""
        assert service.db is not None
        db = service.db
        owner = await db.call(db.batch_owner, batch_id) if _JOB.fullmatch(batch_id) else None
        if owner is None or not client.can_read(owner):  # another key's batch: as if there were none
            raise ApiError(404, "not_found", "there is no batch with this id on this server")
        deadline = time.monotonic() + min(max(wait, 0.0), _MAX_WAIT_S)
        while True:
            found = await db.call(db.batch, batch_id)
            if found is None:
                raise ApiError(404, "not_found", "there is no batch with this id on this server")
            # waiting for all: for the batch marked done, a moment after its last item is recorded
            enough = min_done is not None and found["done"] >= min_done
            if found["status"] == "done" or enough or time.monotonic() >= deadline:
                return found
            await service.wait_for_progress(min(1.0, deadline - time.monotonic()))

    app.include_router(v1)

    # --- operations -----------------------------------------------------------------------------------

    @app.get("/healthz", summary="Liveness and basic state")
    async def healthz() -> Any:
        pool = service.pool
        return {
            "status": "ok",
            "version": __version__,
            "analysis_version": None if pool is None else pool.version(localize=config.localize),
            "uptime_s": round(time.time() - service.started, 3),
            "queue_depth": 0 if pool is None else pool.queued,
            "in_flight": 0 if pool is None else pool.in_flight,
        }

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        pool = service.pool
        running, pending = (0, 0) if service.db is None else await service.db.call(service.db.batch_counts)
        gauges = {
            "pixelsleuth_analysis_queue_depth": (
                "gauge",
                "Analyses waiting for a worker.",
                pool.queued if pool else 0,
            ),
            "pixelsleuth_analyses_in_flight": (
                "gauge",
                "Analyses running now.",
                pool.in_flight if pool else 0,
            ),
            "pixelsleuth_batches_running": ("gauge", "Batch jobs not yet finished.", running),
            "pixelsleuth_batch_items_pending": ("gauge", "Batch items still to analyse.", pending),
            "pixelsleuth_workers": ("gauge", "Analysis worker processes configured.", config.workers),
        }
        return PlainTextResponse(
            service.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return HTMLResponse(page.read_text(encoding="utf-8"))
        return PlainTextResponse(
            "pixelsleuth serve is running, but its web page (static/index.html) is not installed. "
            "The API is at /v1 and documented at /docs.\n"
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("folder"), str):
        raise ApiError(400, "invalid_request", 'send {"folder": PATH} or the images as multipart files')
    return body


def _folder_items(config: ServiceConfig, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The image files of a folder the operator allowed, as (name relative to it, absolute path)."""
    try:
        folder = Path(body["folder"]).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        folder = None
    allowed = [Path(root).resolve() for root in config.allowed_folders]
    if folder is None or not any(folder == root or folder.is_relative_to(root) for root in allowed):
        raise ApiError(
            403,
            "folder_not_allowed",
            "this folder is not one the server's operator allowed for batches (PIXELSLEUTH_ALLOWED_FOLDERS)",
        )
    if not folder.is_dir():
        raise ApiError(400, "not_a_folder", "the path names a file, not a folder")
    files, _ = collect_paths([str(folder)])
    files = [path for path in files if path.resolve().is_relative_to(folder)]  # no links out of it
    if len(files) > config.max_batch_files:
        raise ApiError(
            413,
            "too_many_files",
            f"the folder holds {len(files)} images; a batch may hold {config.max_batch_files}",
        )
    return [(str(path.relative_to(folder)), str(path.resolve())) for path in files]
