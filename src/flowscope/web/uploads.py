"""Files uploaded to the dashboard: streamed to disk under a size cap before anything parses
them. A body past the cap is refused with 413 as soon as its size is known (its declared
length, or the byte that crosses the cap), so a huge upload never fills memory or disk."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from flowscope.errors import FlowscopeError
from flowscope.serving.request_input import BODY_CUT_SHORT

# Room for the multipart boundaries, part headers and the form's small text fields.
FORM_OVERHEAD = 1024 * 1024
_CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadTooLarge(FlowscopeError):
    status = 413


@dataclass
class Upload:
    """An uploaded file on disk (``path``, in a folder of its own the caller owns), the name
    the client gave it (made safe), its size and sha256, and the form's other fields."""

    path: Path
    filename: str
    size: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


class _Counted:
    """An ASGI ``receive`` that stops the body with ``UploadTooLarge(message)`` once it
    passes ``limit`` bytes."""

    def __init__(self, receive: Any, limit: int, message: str) -> None:
        self.receive, self.limit, self.message, self.seen = receive, limit, message, 0

    async def __call__(self) -> Any:
        message = await self.receive()
        if message.get("type") == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                raise UploadTooLarge(self.message)
        return message


async def read_form(request: Request, max_bytes: int, *, max_fields: int = 1000) -> FormData:
    """A form without files (``application/x-www-form-urlencoded`` or multipart), refused
    with 413 past ``max_bytes`` (declared or read) and with 400 when the client goes away
    before the end of it."""
    from starlette.formparsers import MultiPartException
    from starlette.requests import ClientDisconnect

    too_large = f"a form is at most {max_bytes:,} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UploadTooLarge(too_large)
    counted = Request(request.scope, _Counted(request.receive, max_bytes, too_large))
    try:
        return await counted.form(max_files=0, max_fields=max_fields)
    except MultiPartException as exc:
        raise FlowscopeError(f"the form is not valid: {exc.message}") from None
    except ClientDisconnect:
        raise FlowscopeError(BODY_CUT_SHORT) from None


def _too_large(max_bytes: int) -> str:
    return f"the upload is larger than the limit of {max_bytes:,} bytes (upload_max_bytes)"


def safe_filename(name: str | None, default: str = "upload") -> str:
    """The last part of a client's file name, with only letters, digits, ``._ -`` kept."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")[:120]
    return cleaned or default


async def receive_upload(
    request: Request, folder: Path, max_bytes: int, *, field_name: str = "file"
) -> Upload:
    """Read a ``multipart/form-data`` request's file in ``field_name`` into a new folder
    under ``folder``; 413 past ``max_bytes``, 400 for a request with no such file."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise UploadTooLarge(_too_large(max_bytes))
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise FlowscopeError(f"send the file as multipart/form-data in the field {field_name!r}")
    limit = max_bytes + FORM_OVERHEAD
    counted = Request(request.scope, _Counted(request.receive, limit, _too_large(max_bytes)))
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException
    from starlette.requests import ClientDisconnect

    try:
        form = await counted.form(max_files=1, max_fields=50)
    except MultiPartException as exc:
        raise FlowscopeError(f"the upload is not a valid multipart form: {exc.message}") from None
    except ClientDisconnect:
        raise FlowscopeError(BODY_CUT_SHORT) from None
    try:
        item = form.get(field_name)
        if not isinstance(item, UploadFile):
            raise FlowscopeError(f"no file in the form field {field_name!r}")
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        folder.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix="upload-", dir=folder)) / safe_filename(item.filename)
        digest, size = hashlib.sha256(), 0
        try:
            with target.open("wb") as out:
                while chunk := await item.read(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLarge(_too_large(max_bytes))
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
        return Upload(target, target.name, size, digest.hexdigest(), fields)
    finally:
        await form.close()
