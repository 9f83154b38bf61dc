"""Emails queued before kinds and audiences existed obey the grant after the upgrade."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("notifications", "0002_outboxemail_body_after_send_outboxemail_claim_token")]


@pytest.mark.django_db(transaction=True)
def test_legacy_rows_get_their_kind_and_audience() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    Outbox = (
        MigrationExecutor(connection)
        .loader.project_state(BEFORE)
        .apps.get_model("notifications", "OutboxEmail")
    )
    # Only the outbox went back in time; people and accounts are today's.
    from clientarea.accounts.models import Account, Contact, User

    owner = User.objects.create(email="owner@x.test", first_name="O", password="!")
    member = User.objects.create(email="member@x.test", first_name="M", password="!")
    account_row = Account.objects.create(owner=owner, company_name="A", country="IE")
    Contact.objects.create(account=account_row, name="Bea", email="bea@x.test",
                           email_kinds=["invoice"])  # fmt: skip
    account = Outbox._meta.get_field("account").related_model.objects.get(pk=account_row.pk)
    # The owner-only notice that used to be queued as a "product" email.
    Outbox.objects.create(account=account, to_email="owner@x.test", kind="product",
                          subject="Jiinubi: the control-panel password of VPS was revealed",
                          body_text="b", status="sent")  # fmt: skip
    Outbox.objects.create(account=account, to_email="bea@x.test", kind="invoice",
                          subject="Invoice", body_text="b", status="pending")  # fmt: skip
    Outbox.objects.create(account=account, to_email="member@x.test", kind="invoice",
                          subject="Receipt", body_text="b", status="pending")  # fmt: skip
    Outbox.objects.create(account=account, to_email="member@x.test", kind="account",
                          subject="Your access", body_text="b", status="sent")  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from clientarea.notifications.models import OutboxEmail

    rows = {r.subject: r for r in OutboxEmail.objects.all()}
    notice = rows["Jiinubi: the control-panel password of VPS was revealed"]
    assert (notice.kind, notice.audience) == ("security", "owner")
    assert notice.recipient_user_id == owner.pk
    invoice = rows["Invoice"]
    assert invoice.audience == "contact" and invoice.recipient_contact_id is not None
    receipt = rows["Receipt"]
    assert receipt.audience == "member" and receipt.recipient_user_id == member.pk
    access = rows["Your access"]
    assert (access.kind, access.audience) == ("personal", "personal")
    assert access.recipient_user_id == member.pk
