"""Demo data for sub-accounts: a pending invitation, a revoked and an expired
sub-account, two confirmed secondary contacts and one waiting for confirmation, a pending
ownership transfer (Acme Holdings offered to the partner), sent emails and the audit trail
they leave."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from clientarea.core.demo import DEMO_PASSWORD, DemoContext
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import notify

from .models import Account, Contact
from .ownership import ownership_transfer_start
from .permissions import ROLE_PRESETS, Perm
from .services import (
    contact_create,
    invitation_create,
    membership_expire_due,
    membership_grant,
    membership_revoke,
    user_create,
)


def load(ctx: DemoContext) -> None:
    main: Account = ctx.main
    owner = ctx.owner
    now = timezone.now()

    former = user_create(
        email="former@example.com", password=DEMO_PASSWORD, first_name="Fiona", last_name="Former"
    )
    membership = membership_grant(
        account=main, user=former, actor=owner, permission_codes=[Perm.TICKETS, Perm.PRODUCTS]
    )
    membership_revoke(membership=membership, actor=owner)

    contractor = user_create(
        email="contractor@example.com",
        password=DEMO_PASSWORD,
        first_name="Chris",
        last_name="Contractor",
    )
    membership_grant(
        account=main,
        user=contractor,
        actor=owner,
        permission_codes=[Perm.MANAGE_DOMAINS],
        expires_at=now - timedelta(days=2),
    )
    membership_expire_due()

    invitation_create(
        account=main,
        actor=owner,
        email="bookkeeper@example.com",
        permission_codes=ROLE_PRESETS["accountant"][1],
    )

    bea = contact_create(
        account=main,
        actor=owner,
        data={
            "name": "Bea Billing",
            "email": "billing@acme.example",
            "phone": "+353 21 555 0101",
            "email_kinds": ["invoice", "general"],
        },
    )
    tom = contact_create(
        account=main,
        actor=owner,
        data={
            "name": "Tom Tech",
            "email": "tech@acme.example",
            "phone": "",
            "email_kinds": ["support", "product", "domain"],
        },
    )

    # Bea and Tom confirmed their addresses from the link they were sent (the demo stands
    # in for their click); Sam has not yet, so receives nothing until then.
    Contact.objects.filter(pk__in=[bea.pk, tom.pk]).update(
        confirmed_at=now, confirmation_token_hash=""
    )
    contact_create(
        account=main,
        actor=owner,
        data={
            "name": "Sam Studio",
            "email": "studio@agency.example",
            "phone": "",
            "email_kinds": ["product", "domain"],
        },
    )

    notify(
        account=main,
        kind=OutboxEmail.Kind.GENERAL,
        template="notifications/email/notice",
        context={
            "subject": "Scheduled maintenance on Saturday night",
            "body": "Our Cork data centre will be under maintenance on Saturday "
            "from 23:00 to 01:00. Your sites may be slow for a few minutes.",
        },
    )

    # Olivia has offered Acme Holdings to Pat (the partner): pending, with Cancel
    # Transfer under Transfer Ownership. Pat is not one of its sub-accounts: the offer
    # went to his address.
    ownership_transfer_start(
        account=ctx.second,
        actor=owner,
        to_email=ctx.partner.email,
        former_owner_stays=True,
        keep_payment_methods=False,
    )
    # What the demo queued so far counts as delivered yesterday; the worker sends what
    # the visitor does next.
    queued = OutboxEmail.objects.filter(status=OutboxEmail.Status.PENDING)
    queued.exclude(body_after_send="").update(body_text=F("body_after_send"), body_after_send="")
    queued.update(status=OutboxEmail.Status.SENT, attempts=1, sent_at=now - timedelta(days=1))
