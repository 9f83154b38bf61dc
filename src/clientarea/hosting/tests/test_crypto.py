"""The password at rest: never in the database in clear, survives key rotation."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from clientarea.hosting import crypto
from clientarea.hosting.models import Service

from .conftest import KEY_A, KEY_B
from .factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = pytest.mark.django_db


def raw_row(service: Service) -> tuple[Any, ...]:
    table = Service._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [service.pk])
        return cursor.fetchone()


def test_the_stored_row_never_holds_the_password() -> None:
    service = ServiceFactory(password=SERVICE_PASSWORD)
    row = raw_row(service)
    assert not any(SERVICE_PASSWORD in str(value) for value in row)
    token = Service.objects.values_list("password_ciphertext", flat=True).get(pk=service.pk)
    assert Fernet(KEY_A.encode()).decrypt(token.encode()).decode() == SERVICE_PASSWORD


def test_the_same_password_encrypts_differently_each_time() -> None:
    one, two = (
        ServiceFactory(password="same-Secret-value-1"),
        ServiceFactory(password="same-Secret-value-1"),
    )
    assert one.password_ciphertext != two.password_ciphertext


def test_without_the_key_the_column_is_useless(settings: Any) -> None:
    service = ServiceFactory()
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(crypto.SecretUnavailable):
        Service.objects.get(pk=service.pk).decrypt_password()


def test_rotation_re_encrypts_every_secret_with_the_new_key(settings: Any) -> None:
    services = [ServiceFactory(password=f"Rotate-me-please-{i}") for i in range(3)]
    ServiceFactory(password="")  # nothing stored: nothing to rotate
    before = {s.pk: raw_row(s) for s in services}
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]  # new key first, old one still decrypts
    call_command("rotate_encryption_keys", batch_size=2)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]  # the old key is gone
    for i, service in enumerate(services):
        fresh = Service.objects.get(pk=service.pk)
        assert fresh.decrypt_password() == f"Rotate-me-please-{i}"
        assert raw_row(service) != before[service.pk]
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    with pytest.raises(crypto.SecretUnavailable):
        Service.objects.get(pk=services[0].pk).decrypt_password()


def test_rotation_covers_panel_tokens_and_pending_changes(account: Any, settings: Any) -> None:
    from clientarea.core.models import PendingChange
    from clientarea.core.outside import pending_change_secret
    from clientarea.hosting.models import PanelServer

    server = PanelServer(name="cp1", hostname="cp1.example")
    server.set_api_token("WHM-TOKEN-123")
    server.save()
    change = PendingChange.objects.create(
        operation="hosting.password",
        target="hosting.service:1",
        account=account,
        secret_ciphertext=crypto.encrypt("New-Password-Pending-4"),
    )
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    call_command("rotate_encryption_keys")
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    assert PanelServer.objects.get(pk=server.pk).api_token() == "WHM-TOKEN-123"
    fresh = PendingChange.objects.get(pk=change.pk)
    assert pending_change_secret(fresh) == "New-Password-Pending-4"


def test_rotation_reports_secrets_no_key_can_read(settings: Any) -> None:
    readable = ServiceFactory(password="Readable-secret-123")
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    lost = ServiceFactory(password="Under-key-b-only-9")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), KEY_A]
    with pytest.raises(CommandError, match=f"service {lost.pk}"):
        call_command("rotate_encryption_keys")
    assert Service.objects.get(pk=readable.pk).decrypt_password() == "Readable-secret-123"


def test_a_malformed_key_is_a_configuration_error(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")


def test_repr_and_str_never_show_the_secret() -> None:
    service = ServiceFactory()
    assert service.password_ciphertext not in repr(service)
    assert SERVICE_PASSWORD not in repr(service) + str(service)
