"""What a ticket attachment may be: checked by extension AND by the file's own bytes.

The browser's claimed content type is never trusted: the stored type comes from the
allow-list entry the file matched, and the download view serves only a few known-safe
types as themselves (everything else as ``application/octet-stream``).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse
from django.template.defaultfilters import filesizeformat

if TYPE_CHECKING:
    from .models import Attachment

MAX_BYTES = 5 * 1024 * 1024
MAX_FILES = 3
SNIFF_BYTES = 8192


def _is_png(head: bytes) -> bool:
    return head.startswith(b"\x89PNG\r\n\x1a\n")


def _is_jpeg(head: bytes) -> bool:
    return head.startswith(b"\xff\xd8\xff")


def _is_gif(head: bytes) -> bool:
    return head.startswith((b"GIF87a", b"GIF89a"))


def _is_pdf(head: bytes) -> bool:
    return head.startswith(b"%PDF-")


def _is_text(head: bytes) -> bool:
    """Plain UTF-8 text (a BOM is fine), no NUL bytes; a multi-byte character cut off by
    the sniffing window does not count against it."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Kind:
    content_type: str
    sniff: Callable[[bytes], bool]
    description: str


KINDS: dict[str, Kind] = {
    "png": Kind("image/png", _is_png, "a PNG image"),
    "jpg": Kind("image/jpeg", _is_jpeg, "a JPEG image"),
    "jpeg": Kind("image/jpeg", _is_jpeg, "a JPEG image"),
    "gif": Kind("image/gif", _is_gif, "a GIF image"),
    "pdf": Kind("application/pdf", _is_pdf, "a PDF document"),
    "txt": Kind("text/plain", _is_text, "a plain-text file"),
    "log": Kind("text/plain", _is_text, "a plain-text file"),
}
ALLOWED_EXTENSIONS = ("png", "jpg", "gif", "pdf", "txt", "log")
ACCEPT_ATTR = ",".join(f".{ext}" for ext in KINDS)

# The only types served as themselves; anything else is a download of opaque bytes.
SAFE_SERVED_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "application/pdf"})
TEXT_TYPE = "text/plain"

# When the store (the disk, or the S3-compatible bucket) cannot give the file back.
DOWNLOAD_UNAVAILABLE = (
    "This attachment cannot be fetched just now. Please try again in a few minutes."
)

HELP_TEXT = (
    f"Optional: up to {MAX_FILES} files of {filesizeformat(MAX_BYTES)} each "
    f"({', '.join(ALLOWED_EXTENSIONS)})."
)


def served_content_type(stored: str) -> str:
    if stored in SAFE_SERVED_TYPES:
        return stored
    if stored == TEXT_TYPE:
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def extension_of(name: str) -> str:
    return PurePath(name).suffix.lower().lstrip(".")


def attachment_check(upload: UploadedFile) -> str:
    """Validate one upload; return the content type to store. Raises ValidationError."""
    name = PurePath((upload.name or "").replace("\\", "/")).name
    ext = extension_of(name)
    kind = KINDS.get(ext)
    if kind is None:
        raise ValidationError(
            "“%(name)s”: this type of file is not accepted. Allowed: %(allowed)s.",
            code="attachment_type",
            params={"name": name, "allowed": ", ".join(ALLOWED_EXTENSIONS)},
        )
    size = upload.size or 0
    if size > MAX_BYTES:
        raise ValidationError(
            "“%(name)s” is %(size)s; the limit is %(limit)s per file.",
            code="attachment_size",
            params={
                "name": name,
                "size": filesizeformat(size),
                "limit": filesizeformat(MAX_BYTES),
            },
        )
    if size == 0:
        raise ValidationError(
            "“%(name)s” is empty.", code="attachment_empty", params={"name": name}
        )
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    if not kind.sniff(head):
        raise ValidationError(
            "“%(name)s” does not look like %(kind)s: its content does not match its name.",
            code="attachment_content",
            params={"name": name, "kind": kind.description},
        )
    return kind.content_type


def attachments_check(uploads: Sequence[UploadedFile]) -> list[tuple[UploadedFile, str]]:
    """Validate a message's uploads together; every problem is reported at once."""
    if len(uploads) > MAX_FILES:
        raise ValidationError(
            "Attach at most %(max)s files to one message.",
            code="attachment_count",
            params={"max": MAX_FILES},
        )
    checked: list[tuple[UploadedFile, str]] = []
    errors: list[ValidationError] = []
    for upload in uploads:
        try:
            checked.append((upload, attachment_check(upload)))
        except ValidationError as exc:
            errors.append(exc)
    if errors:
        raise ValidationError(errors)
    return checked


def clean_filename(name: str) -> str:
    """The name to remember for a download: the last path part, control characters out."""
    base = PurePath((name or "").replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:255] or "attachment"


def attachment_response(attachment: Attachment) -> FileResponse:
    """Serve a stored attachment as a download, never as active content (customer pages
    and the back office alike), always through the caller's access check: with object
    storage too, the file is streamed from here rather than handed out as a signed URL
    (which anyone holding it could use until it expired, after a revocation too, and which
    could not carry these headers). The file is fetched before the response starts, so a
    store that cannot give it raises ``OSError`` here (the callers say so), never a
    download cut short."""
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.original_name,
        content_type=served_content_type(attachment.content_type),
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response
