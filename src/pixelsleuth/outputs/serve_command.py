"""`pixelsleuth serve`: the REST API on a local port (docs/deployment.md).

Every option can also come from an environment variable `PIXELSLEUTH_<FIELD>` of `ServiceConfig`
(e.g. PIXELSLEUTH_WORKERS=4); an option given on the command line wins. API keys come only from
PIXELSLEUTH_API_KEYS and PIXELSLEUTH_ADMIN_KEYS (comma-separated), never from the command line, where `ps`
would show them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2


def serve_command(
    host: Annotated[
        str, typer.Option("--host", envvar="PIXELSLEUTH_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar="PIXELSLEUTH_PORT", min=0, max=65535, help="Port to listen on.")
    ] = 8000,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Analysis worker processes (default 1).")
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="SQLite results store (default: your user data folder).")
    ] = None,
    localize: Annotated[
        bool | None,
        typer.Option("--localize/--no-localize", help="Localize edits unless a request says otherwise."),
    ] = None,
    no_default_detectors: Annotated[
        bool, typer.Option("--no-default-detectors", help="Skip the shipped detectors (fast, uncalibrated).")
    ] = False,
    max_upload_mb: Annotated[
        float | None, typer.Option("--max-upload-mb", min=0.001, help="Largest upload in MiB (default 50).")
    ] = None,
    retention: Annotated[
        float | None,
        typer.Option("--retention", min=0.0, help="Seconds an uploaded image is kept (default 3600)."),
    ] = None,
    allowed_folder: Annotated[
        list[Path] | None,
        typer.Option("--allowed-folder", help="A server folder batches may name (repeatable)."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the REST API (POST /v1/analyze, batches, reports; OpenAPI docs at /docs)."""
    err = Console(stderr=True)
    try:
        import uvicorn

        from pixelsleuth.outputs.service import ServiceConfig, create_app
    except ImportError as exc:
        message = f"serve needs the service extra: pip install 'pixelsleuth[serve]' ({exc})"
        err.print(Text(message, style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    try:
        config = ServiceConfig.from_env(
            os.environ,
            store=store,
            workers=workers,
            localize=localize,
            default_detectors=False if no_default_detectors else None,
            max_upload_bytes=None if max_upload_mb is None else int(max_upload_mb * 2**20),
            upload_retention_s=retention,
            allowed_folders=tuple(allowed_folder) if allowed_folder else None,
        )
        app = create_app(config)
    except PixelsleuthError as exc:
        err.print(Text(exc.message, style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    if not config.keyed and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            Text(
                f"warning: listening on {host} without API keys; anyone who can reach it can use it "
                "(set PIXELSLEUTH_API_KEYS)",
                style="yellow",
            )
        )
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True, forwarded_allow_ips=None)
