"""Ticket attachments on S3-compatible object storage, pages and API alike (here beside
the API's tests, which may use every app's factories), against a local S3 server (moto's
server mode, one per module on a free loopback port), configured as production is: by
the ATTACHMENTS_S3_* variables and boto3's own credentials.

Uploads from the ticket pages and the API land in the bucket, private, under random
names, and written before (never inside) the transaction that records them; downloads go
through the access-checked views with their headers, never by a URL of the bucket; an
unreachable store is a clear message and leaves nothing behind; a deleted row takes its
file once committed. And the settings: production refuses half a configuration, and the
local default stays the disk."""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from moto.server import ThreadedMotoServer

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.support import services
from clientarea.support.attachments import DOWNLOAD_UNAVAILABLE
from clientarea.support.models import Attachment, Ticket, TicketMessage
from clientarea.support.storage import AttachmentStoreUnavailable, S3AttachmentStorage
from clientarea.support.tests.factories import PDF, PNG, DepartmentFactory, TicketFactory

from .helpers import assert_problem, make_token

pytestmark = pytest.mark.django_db

BUCKET = "clientarea-attachments"
REGION = "eu-west-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": "test-secret"}
# Nothing of the machine's own AWS set-up may leak into (or out of) these tests.
AWS_ENV_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_S3_SESSION_PROFILE",
    "ATTACHMENTS_S3_BUCKET",
    "ATTACHMENTS_S3_ENDPOINT_URL",
    "ATTACHMENTS_S3_REGION",
)
INBOX = "support-inbox@provider.example"
UNAVAILABLE = "Your attachments could not be stored just now, so nothing was saved or sent."


def _start_server() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _stop_server(server: ThreadedMotoServer, *, close: bool) -> None:
    """Stop serving; `close` also closes its socket (connections refused), else they
    connect and are never answered (a store that hangs)."""
    server.stop()
    if close:
        server._server.server_close()


def _settings_module(name: str, env: dict[str, str]) -> ModuleType:
    """A fresh import of a settings module under `env`; the loaded ones are put back."""
    names = (name, "config.settings.base")
    saved = {mod: sys.modules.pop(mod) for mod in names if mod in sys.modules}
    package = importlib.import_module("config.settings")
    with pytest.MonkeyPatch.context() as mp:
        for key in (*AWS_ENV_CLEARED, *CREDENTIALS, "DEMO_MODE"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            return importlib.import_module(name)
        finally:
            for mod in names:
                sys.modules.pop(mod, None)
                if mod in saved:
                    sys.modules[mod] = saved[mod]
                    setattr(package, mod.rpartition(".")[2], saved[mod])
                elif hasattr(package, mod.rpartition(".")[2]):
                    delattr(package, mod.rpartition(".")[2])


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key in AWS_ENV_CLEARED:
            mp.delenv(key, raising=False)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        for key, value in CREDENTIALS.items():
            mp.setenv(key, value)
        yield


def _s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def _create_bucket(endpoint: str) -> None:
    _s3_client(endpoint).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )


@pytest.fixture(scope="module")
def s3_endpoint(aws_env: None) -> Iterator[str]:
    """The local S3 server of this module, with the attachments' bucket."""
    server, endpoint = _start_server()
    _create_bucket(endpoint)
    yield endpoint
    _stop_server(server, close=True)


@pytest.fixture(scope="module", autouse=True)
def _quiet_server_log() -> Iterator[None]:
    """The servers' request lines would fill every failure's report."""
    log = logging.getLogger("werkzeug")
    level = log.level
    log.setLevel(logging.WARNING)
    yield
    log.setLevel(level)


def _storages_for(endpoint: str) -> dict[str, Any]:
    """STORAGES as the base settings make it from the production variables."""
    base = _settings_module(
        "config.settings.base",
        {
            "ATTACHMENTS_S3_BUCKET": BUCKET,
            "ATTACHMENTS_S3_ENDPOINT_URL": endpoint,
            "ATTACHMENTS_S3_REGION": REGION,
        },
    )
    storages: dict[str, Any] = base.STORAGES
    return storages


@pytest.fixture
def s3(settings: Any, s3_endpoint: str) -> Any:
    """Attachments in the bucket for this test; the S3 client to look at it."""
    settings.STORAGES = _storages_for(s3_endpoint)
    return _s3_client(s3_endpoint)


def _keys(client: Any) -> set[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="support/attachments/")
    return {item["Key"] for item in listing.get("Contents", [])}


@pytest.fixture(autouse=True)
def _inbox(settings: Any) -> None:
    settings.SUPPORT_STAFF_EMAIL = INBOX


@pytest.fixture
def technical() -> Any:
    return DepartmentFactory(name="Technical Support")


def _open_form(department: Any, **extra: Any) -> dict[str, Any]:
    return {
        "department": department.pk,
        "subject": "Staging is down",
        "priority": "high",
        "message": "Blank page since the upgrade.",
        **extra,
    }


def _nothing_saved(tickets: int = 0, messages: int = 0) -> None:
    assert Ticket.objects.count() == tickets
    assert TicketMessage.objects.count() == messages
    assert not Attachment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="ticket.").exists()
    assert not OutboxEmail.objects.filter(kind=OutboxEmail.Kind.SUPPORT).exists()
    assert not OutboxEmail.objects.filter(to_email=INBOX).exists()


# --- uploads ------------------------------------------------------------------------------


def test_the_ticket_page_stores_attachments_in_the_bucket_private_and_unguessable(
    s3: Any, s3_endpoint: str, login_client: Callable[..., Client], account: Account, technical: Any
) -> None:
    before = _keys(s3)
    client = login_client(account.owner, account)
    files = [
        SimpleUploadedFile("my screen.png", PNG, "text/html"),
        SimpleUploadedFile("c.pdf", PDF),
    ]
    response = client.post(reverse("support:ticket_open"), _open_form(technical, attachments=files))
    assert response.status_code == 302
    png, pdf = Attachment.objects.order_by("id")
    assert _keys(s3) - before == {png.file.name, pdf.file.name}
    # Random names (a UUID), nothing of the uploader's.
    assert re.fullmatch(r"support/attachments/[0-9a-f]{32}\.png", png.file.name)
    stored = s3.get_object(Bucket=BUCKET, Key=png.file.name)
    assert stored["Body"].read() == PNG
    # Whatever reads the bucket directly gets bytes to download, never a page...
    assert stored["ContentType"] == "application/octet-stream"
    assert stored["ContentDisposition"] == "attachment"
    # ... and nobody reads it without the keys: no public grant, an anonymous GET refused.
    grants = s3.get_object_acl(Bucket=BUCKET, Key=png.file.name)["Grants"]
    assert all("URI" not in grant["Grantee"] for grant in grants)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{s3_endpoint}/{BUCKET}/{png.file.name}", timeout=5)
    assert refused.value.code == 403
    # And the storage never makes a signed URL to hand out.
    assert "Signature" not in default_storage.url(png.file.name)


def test_the_api_stores_a_replys_attachments_in_the_bucket(s3: Any, account: Account) -> None:
    ticket: Ticket = TicketFactory(account=account)
    _, secret = make_token(account, codes=["tickets"])
    before = _keys(s3)
    response = Client().post(
        f"/api/v1/tickets/{ticket.pk}/replies",
        {"message": "The log is attached.", "attachments": [SimpleUploadedFile("e.log", b"500\n")]},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 201, response.content
    attachment = Attachment.objects.get(message__ticket=ticket)
    assert _keys(s3) - before == {attachment.file.name}
    assert s3.get_object(Bucket=BUCKET, Key=attachment.file.name)["Body"].read() == b"500\n"


def test_files_are_stored_before_the_transaction_that_records_them(
    s3: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bucket is another machine: never called inside a transaction, nor while the
    ticket's row is locked (the test itself runs in one transaction: none more)."""
    depth_at_store: list[int] = []
    real_save = S3AttachmentStorage._save

    def spy(self: S3AttachmentStorage, name: str, content: Any) -> str:
        depth_at_store.append(len(connection.atomic_blocks))
        return real_save(self, name, content)

    monkeypatch.setattr(S3AttachmentStorage, "_save", spy)
    outside = len(connection.atomic_blocks)
    access = access_of(account.owner, account)
    ticket = services.ticket_open(
        access=access,
        department=DepartmentFactory(name="Technical Support"),
        subject="Site down",
        priority="high",
        body="Logs attached.",
        files=[SimpleUploadedFile("a.png", PNG)],
    )
    services.ticket_reply_customer(
        ticket=ticket, access=access, body="More.", files=[SimpleUploadedFile("b.pdf", PDF)]
    )
    assert depth_at_store == [outside, outside]
    assert Attachment.objects.count() == 2


def test_a_failed_action_deletes_the_files_it_stored(
    s3: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kwargs: Any) -> None:
        raise RuntimeError("audit down")

    before = _keys(s3)
    monkeypatch.setattr(services, "audit_record", boom)
    with pytest.raises(RuntimeError):
        services.ticket_open(
            access=access_of(account.owner, account),
            department=DepartmentFactory(name="Technical Support"),
            subject="Site down",
            priority="high",
            body="Logs attached.",
            files=[SimpleUploadedFile("a.png", PNG)],
        )
    assert _keys(s3) == before
    _nothing_saved()


def test_a_name_is_never_overwritten(s3: Any) -> None:
    first = default_storage.save("support/attachments/same.txt", ContentFile(b"first"))
    second = default_storage.save("support/attachments/same.txt", ContentFile(b"second"))
    assert first != second
    assert s3.get_object(Bucket=BUCKET, Key=first)["Body"].read() == b"first"


# --- downloads ----------------------------------------------------------------------------


@pytest.fixture
def stored(s3: Any, account: Account) -> Attachment:
    """An attachment of a ticket of `account` about a service, stored in the bucket."""
    ticket = services.ticket_open(
        access=access_of(account.owner, account),
        department=DepartmentFactory(name="Technical Support"),
        subject="Site down",
        priority="high",
        body="Screenshot attached.",
        files=[SimpleUploadedFile('shot "1".png', PNG)],
        about=("service", ServiceFactory(account=account).pk),
    )
    OutboxEmail.objects.all().delete()
    return Attachment.objects.get(message__ticket=ticket)


def _assert_download(response: Any) -> None:
    assert response.status_code == 200
    assert "Location" not in response  # streamed here, never a redirect to the bucket
    assert b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(len(PNG))
    assert response["Content-Disposition"] == 'attachment; filename="shot \\"1\\".png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert {"private", "no-store"} <= set(response["Cache-Control"].split(", "))


def test_downloads_stream_through_the_access_checked_views_with_their_headers(
    stored: Attachment, login_client: Callable[..., Client], account: Account
) -> None:
    page = login_client(account.owner, account)
    _assert_download(page.get(reverse("support:attachment_download", args=[stored.pk])))
    _, secret = make_token(account, codes=["tickets"])
    _assert_download(
        Client().get(
            f"/api/v1/tickets/attachments/{stored.pk}", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )
    )


def test_another_accounts_person_and_a_scoped_person_get_the_same_404(
    stored: Attachment,
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    scoped = member_factory(
        "tickets", "products", scope={"service": [ServiceFactory(account=account).pk], "domain": []}
    )
    for person, their_account in ((other_account.owner, other_account), (scoped.user, account)):
        page = login_client(person, their_account)
        assert page.get(reverse("support:attachment_download", args=[stored.pk])).status_code == 404
        _, secret = make_token(their_account, person, codes=["tickets"])
        assert_problem(
            Client().get(
                f"/api/v1/tickets/attachments/{stored.pk}", HTTP_AUTHORIZATION=f"Bearer {secret}"
            ),
            404,
        )


# --- deleting -----------------------------------------------------------------------------


def test_a_deleted_attachment_takes_its_file_once_committed(
    stored: Attachment, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    name = stored.file.name
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        Ticket.objects.filter(pk=stored.message.ticket_id).delete()  # a cascade, too
        assert name in _keys(s3)  # not inside the transaction
    assert len(callbacks) == 1
    assert name not in _keys(s3)


# --- the store unreachable ----------------------------------------------------------------


@pytest.fixture(params=["refused", "hanging"])
def store_down(request: Any, settings: Any, aws_env: None) -> Iterator[None]:
    """Attachments configured on a store that stopped: its port refuses connections, or
    accepts them and never answers (the timeout must end the wait)."""
    server, endpoint = _start_server()
    _stop_server(server, close=request.param == "refused")
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 0.5
    settings.OUTSIDE_CALL_ATTEMPTS = 1
    settings.STORAGES = _storages_for(endpoint)
    yield
    if request.param == "hanging":
        server._server.server_close()


def test_an_unreachable_store_is_a_clear_message_and_nothing_is_saved(
    store_down: None, login_client: Callable[..., Client], account: Account, technical: Any
) -> None:
    client = login_client(account.owner, account)
    files = [SimpleUploadedFile("a.png", PNG)]
    response = client.post(reverse("support:ticket_open"), _open_form(technical, attachments=files))
    assert response.status_code == 200
    assert UNAVAILABLE in response.content.decode()
    _nothing_saved()

    _, secret = make_token(account, codes=["tickets"])
    api = Client().post(
        "/api/v1/tickets",
        {"subject": "Down", "message": "Help.", "attachments": [SimpleUploadedFile("a.png", PNG)]},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert UNAVAILABLE in assert_problem(api, 503, "unavailable")["detail"]
    assert api["Retry-After"]
    _nothing_saved()


def test_an_unreachable_store_adds_no_reply_without_its_attachments(
    store_down: None, login_client: Callable[..., Client], account: Account
) -> None:
    ticket: Ticket = TicketFactory(account=account, status=Ticket.Status.ANSWERED)
    client = login_client(account.owner, account)
    response = client.post(
        reverse("support:ticket_reply", args=[ticket.pk]),
        {"message": "Log attached.", "attachments": [SimpleUploadedFile("e.log", b"500\n")]},
    )
    assert response.status_code == 200
    assert UNAVAILABLE in response.content.decode()
    _, secret = make_token(account, codes=["tickets"])
    api = Client().post(
        f"/api/v1/tickets/{ticket.pk}/replies",
        {"message": "Log attached.", "attachments": [SimpleUploadedFile("e.log", b"500\n")]},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert_problem(api, 503, "unavailable")
    _nothing_saved(tickets=1)
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.ANSWERED


def test_a_download_from_an_unreachable_store_says_so(
    stored: Attachment,
    settings: Any,
    login_client: Callable[..., Client],
    account: Account,
) -> None:
    server, endpoint = _start_server()
    _stop_server(server, close=True)
    settings.OUTSIDE_CALL_ATTEMPTS = 1
    settings.STORAGES = _storages_for(endpoint)  # the same object, on a store now gone
    with pytest.raises(AttachmentStoreUnavailable):
        default_storage.open(stored.file.name)
    page = login_client(account.owner, account)
    response = page.get(reverse("support:attachment_download", args=[stored.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse(
        "support:ticket_detail", args=[stored.message.ticket_id]
    )
    assert DOWNLOAD_UNAVAILABLE in response.content.decode()
    _, secret = make_token(account, codes=["tickets"])
    api = Client().get(
        f"/api/v1/tickets/attachments/{stored.pk}", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert assert_problem(api, 503, "unavailable")["detail"] == DOWNLOAD_UNAVAILABLE


# --- settings -----------------------------------------------------------------------------

PRODUCTION = {
    "SECRET_KEY": "x" * 60,
    "FIELD_ENCRYPTION_KEYS": "Zmlyc3Qta2V5LWZvci10ZXN0cy0zMi1ieXRlcy1vayE=",
    "HOSTING_PANEL_DRIVER": "clientarea.hosting.whm.WhmPanelDriver",
    "DOMAINS_REGISTRAR_DRIVER": "clientarea.domains.epp.EppRegistrarDriver",
    "BILLING_CARD_GATEWAY": "",
}


def test_the_local_default_is_the_disk() -> None:
    base = _settings_module("config.settings.base", {})
    assert base.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    local = _settings_module("config.settings.local", {})
    assert local.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ATTACHMENTS_S3_ENDPOINT_URL": "https://s3.example.net"},
            "ATTACHMENTS_S3_ENDPOINT_URL set without ATTACHMENTS_S3_BUCKET",
        ),
        (
            {"ATTACHMENTS_S3_REGION": "eu-west-1"},
            "ATTACHMENTS_S3_REGION set without ATTACHMENTS_S3_BUCKET",
        ),
        (
            {"ATTACHMENTS_S3_BUCKET": BUCKET, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
        ),
    ],
)
def test_production_refuses_half_an_object_store(env: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        _settings_module("config.settings.production", {**PRODUCTION, **env})


def test_production_takes_a_bucket_with_or_without_keys() -> None:
    for keys in ({}, CREDENTIALS):
        production = _settings_module(
            "config.settings.production", {**PRODUCTION, "ATTACHMENTS_S3_BUCKET": BUCKET, **keys}
        )
        default = production.STORAGES["default"]
        assert default["BACKEND"] == "clientarea.support.storage.S3AttachmentStorage"
        assert default["OPTIONS"] == {
            "bucket_name": BUCKET,
            "endpoint_url": None,
            "region_name": None,
        }
        # The keys stay boto3's: never a Django setting.
        assert not hasattr(production, "AWS_SECRET_ACCESS_KEY")


# --- the back office ----------------------------------------------------------------------


def _staff_reply(ticket: Ticket, files: list[SimpleUploadedFile]) -> Any:
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    form = {
        "status": ticket.status,
        "department": ticket.department_id,
        "priority": ticket.priority,
        "reply": "Fixed: the log is attached.",
        "reply_attachments": files,
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
    }
    return client.post(reverse("admin:support_ticket_change", args=[ticket.pk]), form, follow=True)


def test_a_staff_reply_stores_its_files_outside_any_transaction(
    s3: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket: Ticket = TicketFactory(account=account)
    depth_at_store: list[int] = []
    real_save = S3AttachmentStorage._save

    def spy(self: S3AttachmentStorage, name: str, content: Any) -> str:
        depth_at_store.append(len(connection.atomic_blocks))
        return real_save(self, name, content)

    monkeypatch.setattr(S3AttachmentStorage, "_save", spy)
    outside = len(connection.atomic_blocks)
    response = _staff_reply(ticket, [SimpleUploadedFile("fix.txt", b"done\n")])
    assert "was emailed to the customer" in response.content.decode()
    attachment = Attachment.objects.get(message__ticket=ticket, message__is_staff=True)
    assert depth_at_store == [outside]
    assert attachment.file.name in _keys(s3)


def test_a_staff_reply_to_an_unreachable_store_saves_nothing(
    store_down: None, account: Account
) -> None:
    ticket: Ticket = TicketFactory(account=account, status=Ticket.Status.OPEN)
    response = _staff_reply(ticket, [SimpleUploadedFile("fix.txt", b"done\n")])
    assert f"Nothing was saved: {UNAVAILABLE}" in response.content.decode()
    assert not TicketMessage.objects.filter(ticket=ticket, is_staff=True).exists()
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.OPEN
    _nothing_saved(tickets=1)
