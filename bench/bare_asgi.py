"""A bare ASGI app (no framework, no database): the machine's own latency floor for bench_ingest's pings.

Served by the same uvicorn as the app (1 worker, same HTTP parser) and pinged in the same windows, so that
its busy p99 shows what the machine alone (CPU contention from the clients, the server's threads and other
work) does to a request that has nothing to wait for inside its own process.

    .venv/bin/python -m uvicorn bench.bare_asgi:app --port 8001
"""

from __future__ import annotations

from typing import Any

_BODY = b'{"status":"ok"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with 200 ``{"status":"ok"}``; accept the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
