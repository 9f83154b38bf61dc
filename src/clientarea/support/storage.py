"""Where ticket attachments live: the local disk by default, or an S3-compatible bucket
when ``ATTACHMENTS_S3_BUCKET`` is set (``config.settings.base`` picks the backend).

Attachments are never given out by URL: the access-checked download views read them and
answer with their own headers. So the bucket's objects stay private (no ACL is sent: the
bucket's own policy, which must block public access, decides), no signed URL is ever made
(``querystring_auth`` off: ``url()`` could only name an object nobody may read), and
whatever reads the bucket directly by mistake gets opaque bytes to download, never a page.

Every failure to reach the store is an ``OSError`` (as the local disk's are), so the
service functions and views handle both backends with one ``except``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.base import File
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# A download is read whole before it is answered: in memory up to this, then a temporary file.
SPOOL_MAX_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024


class AttachmentStoreUnavailable(OSError):
    """The object store did not answer, or refused (credentials, bucket, network)."""


@contextmanager
def _store_errors(name: str) -> Iterator[None]:
    """botocore's errors as ``OSError``: a missing object is ``FileNotFoundError`` (as on
    disk), anything else ``AttachmentStoreUnavailable``."""
    try:
        yield
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise FileNotFoundError(f"No such attachment in the store: {name}") from exc
        raise AttachmentStoreUnavailable(f"The attachment store refused: {exc}") from exc
    except BotoCoreError as exc:
        raise AttachmentStoreUnavailable(f"The attachment store is unreachable: {exc}") from exc


class S3AttachmentStorage(S3Storage):
    """django-storages' S3 backend with the attachments' rules fixed in code, not left to
    settings: private objects, no signed URLs, never overwrite a name, and the project's
    outside-call timeout and attempts (a page never waits boto's default minute).

    Credentials come from boto3's own chain (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, a profile, or the machine's role): never from Django's
    settings, so they are not in ``settings`` for an error page or a dump to show."""

    default_acl = None
    querystring_auth = False
    file_overwrite = False
    # Only read through the download views, which set the real type and headers.
    object_parameters = {
        "ContentType": "application/octet-stream",
        "ContentDisposition": "attachment",
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client_config = Config(
            connect_timeout=settings.OUTSIDE_CALL_TIMEOUT_SECONDS,
            read_timeout=settings.OUTSIDE_CALL_TIMEOUT_SECONDS,
            retries={
                "mode": "standard",
                "total_max_attempts": max(1, settings.OUTSIDE_CALL_ATTEMPTS),
            },
            # S3-compatible services (MinIO, Ceph...) commonly serve buckets by path only;
            # AWS itself gets botocore's choice (virtual-hosted).
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            signature_version="s3v4",
        )

    def _open(self, name: str, mode: str = "rb") -> File[bytes]:
        """The whole object (at most the attachment limit), fetched now with one GET, so
        an outage is an error before a response starts, never a download cut short.
        (django-storages' own file asks twice more, HEAD then HEAD, before its GET.)"""
        if mode != "rb":
            raise ValueError("Attachments are written once, by save(), and read as bytes.")
        # Handed to the caller, who closes it (FileResponse does).
        body = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES)  # noqa: SIM115
        try:
            with _store_errors(name):
                answer = self.connection.meta.client.get_object(
                    Bucket=self.bucket_name, Key=self._normalize_name(clean_name(name))
                )
                for chunk in answer["Body"].iter_chunks(CHUNK_BYTES):
                    body.write(chunk)
        except BaseException:
            body.close()
            raise
        body.seek(0)
        return File(body, name=name)

    def _save(self, name: str, content: Any) -> str:
        with _store_errors(name):
            return str(super()._save(name, content))

    def delete(self, name: str) -> None:
        with _store_errors(name):
            super().delete(name)

    def exists(self, name: str) -> bool:
        with _store_errors(name):
            return bool(super().exists(name))

    def size(self, name: str) -> int:
        with _store_errors(name):
            return int(super().size(name))
