"""The service's guards: typed API errors, API keys and who owns what, rate and concurrency limits, and
the body limit.

Example:
    >>> keys = KeyChecker(("alpha", "beta"), admin_keys=("root",))
    >>> keys.identify("Bearer beta"), keys.identify("Bearer nope"), keys.identify(None)
    ('key-2', None, None)
    >>> beta, root = keys.caller("Bearer beta"), keys.caller("Bearer root")
    >>> beta.owner == owner_id("beta"), beta.can_read(owner_id("alpha")), root.can_read(owner_id("alpha"))
    (True, False, True)
    >>> bucket = RateLimiter(per_minute=2, clock=lambda: 0.0)
    >>> [bucket.take("me") for _ in range(3)]
    [0.0, 0.0, 30.0]
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error the API answers with: an HTTP status and the JSON body ``{"error": {"type", "message"}}``."""

    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message}}


def owner_id(key: str) -> str:
    """The identifier a key's results are stored under: 16 hex digits of a SHA-256 of the key.

    Stable across restarts and reordered key lists, and not the key: the store never holds a key.
    """
    return hashlib.sha256(b"pixelsleuth-owner\0" + key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    """Who sent a request to /v1.

    Attributes:
        label: the name limits count it under (``key-1``, ``admin-1``, ``addr-HOST`` without keys).
        owner: what results it creates are stored under (`owner_id` of its key; empty without keys).
        reads_all: it may read every result (an admin key, or any client when no keys are configured).
    """

    label: str
    owner: str
    reads_all: bool = False

    def can_read(self, owner: str) -> bool:
        """True when this caller may read a result or batch stored under `owner` ("" for none)."""
        return self.reads_all or (owner != "" and owner == self.owner)


class KeyChecker:
    """Checks ``Authorization: Bearer KEY`` against the configured keys in constant time.

    A key is known by its position (``key-1``, ``key-2`` …, ``admin-1`` …) in metrics and limits and by
    its `owner_id` in the store, never by itself. A key listed as both is an admin key.
    """

    def __init__(self, keys: tuple[str, ...], admin_keys: tuple[str, ...] = ()) -> None:
        self._callers = [
            (key.encode("utf-8"), Caller(f"admin-{index}", owner_id(key), reads_all=True))
            for index, key in enumerate(admin_keys, start=1)
        ]
        self._callers += [
            (key.encode("utf-8"), Caller(f"key-{index}", owner_id(key)))
            for index, key in enumerate(keys, start=1)
        ]

    @property
    def enabled(self) -> bool:
        return bool(self._callers)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller a header names, or None when it is missing or names no configured key."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        offered = token.strip().encode("utf-8")
        found = None
        for key, caller in self._callers:  # compare with every key: no early exit
            if hmac.compare_digest(offered, key) and found is None:
                found = caller
        return found

    def identify(self, authorization: str | None) -> str | None:
        """The key's label, or None when the header is missing or names no configured key."""
        found = self.caller(authorization)
        return None if found is None else found.label


class RateLimiter:
    """A token bucket per client: `per_minute` requests with that burst; `take` returns 0 or the wait."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one token; returns 0.0 when allowed, else the seconds until a token is back."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / rate


class ConcurrencyLimiter:
    """At most `limit` analyses running per client (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> bool:
        with self._lock:
            if self.limit and self.running[client] >= self.limit:
                return False
            self.running[client] += 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self.running[client] -= 1
            if self.running[client] <= 0:
                del self.running[client]


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class BodyTooLarge(Exception):
    """Raised from `receive` as soon as a request body passes its limit."""


class BodyLimitMiddleware:
    """Refuses request bodies over a limit while they stream in (ASGI), never after reading them whole.

    A declared Content-Length over the limit is refused before a byte is read; a chunked body is
    counted as it arrives and cut off at the limit. `limit_for(path)` gives each path its limit.
    """

    def __init__(
        self, app: Any, limit_for: Callable[[str], int], too_large: Callable[[int], ApiError]
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.too_large = too_large

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, self.too_large(limit))
            return
        received = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watching_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if not started:
                await _send_error(send, self.too_large(limit))


async def _send_error(send: Callable, error: ApiError) -> None:
    import json

    body = json.dumps(error.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(b"connection", b"close")]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
