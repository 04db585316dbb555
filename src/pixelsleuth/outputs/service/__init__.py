"""`pixelsleuth serve`: the REST API (FastAPI is imported only when the app is built).

Example:
    >>> from pixelsleuth.outputs.service import ServiceConfig
    >>> ServiceConfig(store="results.sqlite3").workers
    1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixelsleuth.outputs.service.config import ServiceConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServiceConfig", "create_app"]


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI application for `config` (see `pixelsleuth.outputs.service.app.create_app`)."""
    from pixelsleuth.outputs.service.app import create_app as build

    return build(config)
