from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Contact, Invitation, Membership
from clientarea.audit.models import AuditEvent
from clientarea.core import demo
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db


def test_demo_shows_off_sub_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Load the foundation plus this app's demo only (other apps test their own).
    only = SimpleNamespace(get_app_configs=lambda: [apps.get_app_config("accounts")])
    monkeypatch.setattr(demo, "apps", only)
    ctx = demo.demo_load()
    main = ctx.main
    assert Invitation.objects.filter(account=main, status=Invitation.Status.PENDING).count() == 1
    statuses = dict(Membership.objects.filter(account=main).values_list("user__email", "status"))
    assert statuses["former@example.com"] == Membership.Status.REVOKED
    assert statuses["contractor@example.com"] == Membership.Status.EXPIRED
    confirmed = Contact.objects.filter(account=main, confirmed_at__isnull=False)
    kinds = [c.email_kinds for c in confirmed]
    assert len(kinds) == 2 and kinds[0] != kinds[1]
    assert Contact.objects.filter(account=main, confirmed_at__isnull=True).count() == 1
    assert OutboxEmail.objects.filter(account=main, status=OutboxEmail.Status.SENT).count() >= 5
    assert not OutboxEmail.objects.filter(body_text__contains="/invitation/").exists()
    assert not OutboxEmail.objects.filter(body_text__contains="/contacts/confirm/").exists()
    actions = set(AuditEvent.objects.filter(account=main).values_list("action", flat=True))
    assert {"invitation.sent", "membership.revoked", "membership.expired",
            "contact.added"} <= actions  # fmt: skip
    client = Client()
    client.force_login(ctx.owner)
    session = client.session
    session["current_account_id"] = main.pk
    session.save()
    for name in ("accounts:users", "accounts:contacts", "notifications:history", "audit:activity"):
        assert client.get(reverse(name)).status_code == 200, name
