"""Demo tickets: the owner and the developer each opened some on Acme Web Studio (the
developer's under their own name, with a staff answer), and Globex Ltd has one."""

from __future__ import annotations

from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.policy import Access, access_for
from clientarea.core.demo import DemoContext

from .models import Department, Ticket, TicketMessage
from .services import ticket_close, ticket_open, ticket_reply_customer, ticket_reply_staff

PHP_LOG = b"""[28-Nov-2026 09:14:02 UTC] PHP Fatal error:  Uncaught Error:
 Call to undefined function
 mysql_connect() in /home/acmeweb/staging/wp-content/plugins/legacy-gallery/db.php:12
Stack trace:
#0 /home/acmeweb/staging/wp-settings.php(526): include_once()
#1 {main}
  thrown in /home/acmeweb/staging/wp-content/plugins/legacy-gallery/db.php on line 12
"""


def _backdate(ticket: Ticket, days: float) -> None:
    """Spread the demo over the last weeks: each message keeps its order."""
    start = timezone.now() - timedelta(days=days)
    messages = list(TicketMessage.objects.filter(ticket=ticket).order_by("created_at", "id"))
    for i, message in enumerate(messages):
        TicketMessage.objects.filter(pk=message.pk).update(
            created_at=start + timedelta(hours=5 * i)
        )
    last = start + timedelta(hours=5 * max(len(messages) - 1, 0))
    Ticket.objects.filter(pk=ticket.pk).update(created_at=start, updated_at=last)


def _access(user: User, account: Account) -> Access:
    """The person's access as their page would have it: the services ask the policy."""
    access = access_for(user, account.pk)
    assert access is not None, f"{user} has no access to {account}"
    return access


def load(ctx: DemoContext) -> None:
    sales = Department.objects.create(
        name="Sales", description="Plans, upgrades and new services", order=1
    )
    technical = Department.objects.create(
        name="Technical Support", description="Websites, email, DNS and servers", order=2
    )
    billing = Department.objects.create(
        name="Billing", description="Invoices, payments and refunds", order=3
    )

    # The developer, under their own name, with a log attached and a staff answer.
    staging = ticket_open(
        access=_access(ctx.developer, ctx.main),
        department=technical,
        subject="Staging site shows a blank page after the PHP 8.2 upgrade",
        priority=Ticket.Priority.HIGH,
        body=(
            "Hi,\n\nsince this morning's PHP upgrade staging.acme-web.example only shows a "
            "blank page. The error log is attached. Production looks fine.\n\n"
            "Could you switch staging back to PHP 8.1 while I fix the plugin?\n\nDana"
        ),
        files=[SimpleUploadedFile("php-error.log", PHP_LOG, content_type="text/plain")],
    )
    ticket_reply_staff(
        ticket=staging,
        staff=ctx.staff,
        body=(
            "Hello Dana,\n\nthe log shows the legacy-gallery plugin still calls mysql_connect(), "
            "which was removed in PHP 7. I have switched the staging subdomain to PHP 8.1 "
            "for now; production stays on 8.2.\n\nReplace or update the plugin, then reply "
            "here and we will move staging back.\n\nSam"
        ),
    )
    ticket_reply_customer(
        ticket=staging,
        access=_access(ctx.developer, ctx.main),
        body="Thanks Sam, staging is back. I'll update the plugin this week.",
    )
    _backdate(staging, days=3)

    ssh = ticket_open(
        access=_access(ctx.developer, ctx.main),
        department=technical,
        subject="Please enable SSH access for deployments",
        priority=Ticket.Priority.MEDIUM,
        body="We deploy with a CI pipeline now. Can SSH access be enabled on acme-web.example?",
    )
    _backdate(ssh, days=0.5)

    # The owner's own tickets.
    address = ticket_open(
        access=_access(ctx.owner, ctx.main),
        department=billing,
        subject="Company address on invoices",
        priority=Ticket.Priority.LOW,
        body="We moved to 12 Harbour Road, Cork. Will the next invoice show the new address?",
    )
    ticket_reply_staff(
        ticket=address,
        staff=ctx.staff,
        body=(
            "Hello Olivia,\n\ninvoices use the address in Account Details, which already "
            "shows 12 Harbour Road. The next invoice will carry it.\n\nSam"
        ),
    )
    _backdate(address, days=9)

    upgrade = ticket_open(
        access=_access(ctx.owner, ctx.main),
        department=sales,
        subject="Upgrade to the Business hosting plan",
        priority=Ticket.Priority.MEDIUM,
        body="What would it cost to move our main site to the Business plan?",
    )
    ticket_reply_staff(
        ticket=upgrade,
        staff=ctx.staff,
        body="The Business plan is 24.00 EUR a month; we can switch you at any time.",
    )
    ticket_close(ticket=upgrade, access=_access(ctx.owner, ctx.main))
    _backdate(upgrade, days=20)

    # Another customer: never visible from Acme Web Studio.
    mail = ticket_open(
        access=_access(ctx.other_owner, ctx.other),
        department=technical,
        subject="Moving our mailboxes from the old provider",
        priority=Ticket.Priority.MEDIUM,
        body="We have 12 mailboxes to migrate. Can you import them over IMAP?",
    )
    _backdate(mail, days=1)
