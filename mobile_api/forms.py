"""Multipart uploads parsed off the event loop (performance goal G-I3).

Starlette parses ``multipart/form-data`` on the event loop: python-multipart's parser runs there for every
received chunk (~64 KiB), and once a file part passes 1 MiB each chunk's write to its spooled temp file is
one more hop to the threadpool. For a 4 MB photo that is ~6 ms of loop time and ~60 thread hops per
request, which is what made ``/healthz`` slow during ingest.

:class:`OffLoopFormRoute` (the phone API's ``route_class``) keeps only the cheap part on the loop: it
receives the body chunks and batches them; every :data:`FEED_BYTES` the batch is handed to a worker thread
that runs the parser and writes the file parts to temp files. So a request keeps at most one batch of raw
body in memory, and a 4 MB photo costs 1–2 thread hops.

File parts are written where the photo store can take them as they are (G-I2): into a temp file in the
store's own folder (:meth:`gridcity.storage.MediaStore.spool_dir`), hashed (SHA-256) while they are written.
Each such part is a :class:`SpooledUpload` that knows its file and hash, so the service neither hashes the
upload again nor writes its bytes a second time: the original is hard-linked into the store
(:meth:`~gridcity.storage.MediaStore.put_file`). The temp name is removed when the request's form is closed
(a crash leaves a ``.tmp-`` file, which the orphan cleaner removes). Without a store (or for a form parsed
elsewhere) the parts are spooled as in Starlette (in memory up to :data:`SPOOL_MAX_SIZE`, then on disk).

Bodies larger than the deployment allows are refused with 413 before they
are read (``Content-Length``) or as soon as they grow past it (chunked). The result is the same
:class:`~starlette.datastructures.FormData` FastAPI would build, so ``Form``/``File`` parameters, their
validation and the OpenAPI schema are unchanged. Other content types go through Starlette as usual.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers, UploadFile

from gridcity.errors import PayloadTooLarge

#: Raw body gathered on the loop before the parser runs on it in a worker thread (one hop per batch).
FEED_BYTES = 4 * 1024 * 1024
#: File parts up to this size stay in memory; larger ones go to a temp file (as in Starlette).
SPOOL_MAX_SIZE = 1024 * 1024
#: Most photo parts one submission may carry (a self-handled report: 9 before + 9 after).
MAX_PHOTO_PARTS = 18
#: Room for the JSON fields and the multipart framing on top of the photos.
BODY_OVERHEAD = 1024 * 1024


def max_body_bytes(request: Request) -> int:
    """The largest multipart body the phone API reads: 18 photos at the deployment's limit, plus fields.

    The same number as the app-wide request guard's multipart limit (``Settings.max_multipart_bytes``).
    """
    return int(request.app.state.settings.max_multipart_bytes)


class SpooledUpload(UploadFile):
    """A file part written to a named temp file under the photo store, with the SHA-256 of its bytes."""

    def __init__(self, file: IO[bytes], *, path: Path, filename: str | None, headers: Headers) -> None:
        super().__init__(file=file, size=0, filename=filename, headers=headers)  # type: ignore[arg-type]
        self.path = path
        self.hasher = hashlib.sha256()
        self.sha256 = ""


def _decode(data: bytes | bytearray, charset: str) -> str:
    try:
        return bytes(data).decode(charset)
    except (UnicodeDecodeError, LookupError):
        return bytes(data).decode("latin-1")


class _Part:
    __slots__ = ("data", "disposition", "file", "headers", "name", "spooled")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.disposition = b""
        self.name = ""
        self.data = bytearray()
        self.file: UploadFile | None = None
        self.spooled: SpooledUpload | None = None


class SyncMultipart:
    """python-multipart driven synchronously (in a worker thread), building Starlette's ``FormData``."""

    def __init__(
        self,
        headers: Headers,
        *,
        max_files: float,
        max_fields: float,
        max_part_size: int,
        spool_dir: Path | None = None,
    ) -> None:
        _, params = parse_options_header(headers["Content-Type"])
        charset = params.get(b"charset", b"utf-8")
        try:
            self.charset = codecs.lookup(charset.decode("latin-1") if isinstance(charset, bytes) else charset).name
        except LookupError:
            self.charset = "latin-1"
        boundary = params.get(b"boundary")
        if not boundary:
            raise HTTPException(400, "Missing boundary in multipart.")
        self.max_files, self.max_fields, self.max_part_size = max_files, max_fields, max_part_size
        self.spool_dir = spool_dir
        self.items: list[tuple[str, str | UploadFile]] = []
        self.files: list[IO[bytes]] = []
        self.n_files = self.n_fields = 0
        self.part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    def _part_begin(self) -> None:
        self.part = _Part()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if part.file is None:
            if len(part.data) + end - start > self.max_part_size:
                raise HTTPException(400, f"Part exceeded maximum size of {self.max_part_size // 1024}KB.")
            part.data.extend(data[start:end])
        else:
            view = memoryview(data)[start:end]
            part.file.file.write(view)
            part.file.size = (part.file.size or 0) + end - start
            if part.spooled is not None:
                part.spooled.hasher.update(view)

    def _part_end(self) -> None:
        part = self.part
        if part.file is None:
            self.items.append((part.name, _decode(part.data, self.charset)))
        else:
            if part.spooled is not None:
                part.spooled.sha256 = part.spooled.hasher.hexdigest()
                part.spooled.file.flush()
            part.file.file.seek(0)
            self.items.append((part.name, part.file))

    def _header_end(self) -> None:
        name = bytes(self._header_name).lower()
        value = bytes(self._header_value)
        if name == b"content-disposition":
            self.part.disposition = value
        self.part.headers.append((name, value))
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        if b"name" not in options:
            raise HTTPException(400, 'The Content-Disposition header field "name" must be provided.')
        self.part.name = _decode(options[b"name"], self.charset)
        if b"filename" in options:
            self.n_files += 1
            if self.n_files > self.max_files:
                raise HTTPException(400, f"Too many files. Maximum number of files is {self.max_files}.")
            filename = _decode(options[b"filename"], self.charset)
            headers = Headers(raw=self.part.headers)
            if self.spool_dir is not None:
                named = tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix=".tmp-upload-")  # noqa: SIM115
                self.files.append(named)
                self.part.spooled = SpooledUpload(named, path=Path(named.name), filename=filename, headers=headers)
                self.part.file = self.part.spooled
            else:
                spool: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(max_size=SPOOL_MAX_SIZE)
                self.files.append(spool)  # type: ignore[arg-type]
                self.part.file = UploadFile(file=spool, size=0, filename=filename, headers=headers)
        else:
            self.n_fields += 1
            if self.n_fields > self.max_fields:
                raise HTTPException(400, f"Too many fields. Maximum number of fields is {self.max_fields}.")

    def feed(self, chunks: list[bytes]) -> None:
        """Parse the next chunks of the body."""
        try:
            for chunk in chunks:
                self.parser.write(chunk)
        except FormParserError as exc:
            raise HTTPException(400, "Invalid multipart data.") from exc

    def finish(self, chunks: list[bytes]) -> FormData:
        """Parse the last chunks and return the form."""
        self.feed(chunks)
        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise HTTPException(400, "Invalid multipart data.") from exc
        return FormData(self.items)

    def close(self) -> None:
        """Drop the temp files (after a failure)."""
        for f in self.files:
            f.close()


async def parse_multipart_off_loop(
    request: Request, *, max_files: float = 1000, max_fields: float = 1000, max_part_size: int = 1024 * 1024
) -> FormData:
    """Read a multipart body on the loop in batches and parse each batch in the threadpool."""
    limit = max_body_bytes(request)
    store = getattr(request.app.state, "store", None)
    state = SyncMultipart(
        request.headers,
        max_files=max_files,
        max_fields=max_fields,
        max_part_size=max_part_size,
        spool_dir=store.spool_dir() if store is not None else None,
    )
    batch: list[bytes] = []
    batched = total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise HTTPException(413, f"the request body is larger than {limit} bytes")
            batch.append(chunk)
            batched += len(chunk)
            if batched >= FEED_BYTES:
                await run_in_threadpool(state.feed, batch)
                batch, batched = [], 0
        return await run_in_threadpool(state.finish, batch)
    except BaseException:
        state.close()
        raise


class _OffLoopFormRequest(Request):
    """A request whose multipart form is parsed by :func:`parse_multipart_off_loop`."""

    def form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,  # type: ignore[override]
        max_part_size: int = 1024 * 1024,
    ) -> Any:
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if content_type != b"multipart/form-data" or self._form is not None:
            return super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)

        async def parse() -> FormData:
            self._form = await parse_multipart_off_loop(
                self, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
            )
            return self._form

        return parse()


class OffLoopFormRoute(APIRoute):
    """An ``APIRoute`` that parses multipart bodies off the event loop and refuses oversized ones early."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_body_bytes(request):
                raise PayloadTooLarge(
                    f"the request body is larger than {max_body_bytes(request)} bytes",
                    code="request.too_large",
                    loc=["body"],
                )
            return await handler(_OffLoopFormRequest(request.scope, request.receive))

        return route_handler
