"""The attachment rules: allow-listed extensions whose bytes match, size and count limits."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import strategies as st

from clientarea.support import attachments
from clientarea.support.attachments import (
    MAX_BYTES,
    MAX_FILES,
    attachment_check,
    attachments_check,
    clean_filename,
    served_content_type,
)

from .factories import PDF, PNG

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
GIF = b"GIF89a" + b"\x00" * 20


def upload(
    name: str, data: bytes, content_type: str = "application/octet-stream"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.mark.parametrize(
    ("name", "data", "stored"),
    [
        ("screen.png", PNG, "image/png"),
        ("Photo.JPG", JPEG, "image/jpeg"),
        ("photo.jpeg", JPEG, "image/jpeg"),
        ("anim.gif", GIF, "image/gif"),
        ("contract.pdf", PDF, "application/pdf"),
        ("notes.txt", "Grüße, ça marche\n".encode(), "text/plain"),
        ("error.log", b"[error] 500\n", "text/plain"),
    ],
)
def test_allowed_files_pass_and_the_stored_type_comes_from_the_allow_list(
    name: str, data: bytes, stored: str
) -> None:
    # The browser's claimed type is ignored: it says text/html for every one of them.
    assert attachment_check(upload(name, data, "text/html")) == stored


@pytest.mark.parametrize(
    "name", ["page.html", "run.exe", "image.svg", "script.js", "noext", "a.png.html"]
)
def test_other_extensions_are_refused_with_a_clear_message(name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        attachment_check(upload(name, b"hello"))
    assert "this type of file is not accepted" in exc.value.messages[0]
    assert "png, jpg, gif, pdf, txt, log" in exc.value.messages[0]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cute.png", b"<html><script>alert(1)</script></html>"),  # HTML renamed to .png
        ("cute.png", JPEG),  # a JPEG is not a PNG
        ("doc.pdf", b"MZ\x90\x00 an executable"),
        ("photo.jpg", GIF),
        ("notes.txt", PNG),  # binary with NUL bytes is not text
        ("notes.log", b"\xff\xfe\xfa not utf-8"),
    ],
)
def test_content_that_does_not_match_the_extension_is_refused(name: str, data: bytes) -> None:
    with pytest.raises(ValidationError) as exc:
        attachment_check(upload(name, data))
    assert "its content does not match its name" in exc.value.messages[0]


def test_size_limit_per_file() -> None:
    big = upload("big.txt", b"a" * (MAX_BYTES + 1))
    with pytest.raises(ValidationError) as exc:
        attachment_check(big)
    assert "the limit is 5.0\xa0MB per file" in exc.value.messages[0]
    assert attachment_check(upload("ok.txt", b"a" * MAX_BYTES)) == "text/plain"


def test_empty_file_refused() -> None:
    with pytest.raises(ValidationError, match="is empty"):
        attachment_check(upload("empty.txt", b""))


def test_count_limit_per_message_and_every_problem_reported_at_once() -> None:
    with pytest.raises(ValidationError, match=f"at most {MAX_FILES} files"):
        attachments_check([upload(f"{i}.txt", b"x") for i in range(MAX_FILES + 1)])
    with pytest.raises(ValidationError) as exc:
        attachments_check([upload("a.exe", b"x"), upload("b.png", b"x"), upload("c.txt", b"ok")])
    assert len(exc.value.messages) == 2


def test_a_multibyte_character_cut_by_the_sniff_window_is_still_text() -> None:
    data = b"a" * (attachments.SNIFF_BYTES - 1) + "é".encode()
    assert attachment_check(upload("long.txt", data)) == "text/plain"


@pytest.mark.parametrize(
    ("stored", "served"),
    [
        ("image/png", "image/png"),
        ("application/pdf", "application/pdf"),
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("", "application/octet-stream"),
    ],
)
def test_only_safe_types_are_served_as_themselves(stored: str, served: str) -> None:
    assert served_content_type(stored) == served


@given(st.text(max_size=300))
def test_clean_filename_never_keeps_a_path_or_control_characters(name: str) -> None:
    cleaned = clean_filename(name)
    assert cleaned
    assert "/" not in cleaned and "\\" not in cleaned
    assert all(ch.isprintable() for ch in cleaned)
    assert len(cleaned) <= 255


def test_clean_filename_examples() -> None:
    assert clean_filename("../../etc/passwd.txt") == "passwd.txt"
    assert clean_filename("C:\\Users\\dana\\shot.png") == "shot.png"
    assert clean_filename("evil\r\nname.txt") == "evilname.txt"
    assert clean_filename("") == "attachment"
