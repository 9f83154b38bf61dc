"""The channel matrix: every email x every recipient role, and Email History x every viewer.

For each email of the channel table (``clientarea/channel_table.py``) the real action is
performed through the service functions, in a world where every role is present at once:
the owner, a person holding each single permission, All Permissions, a revoked and an
expired sub-account, a confirmed contact of each kind and an unconfirmed contact of every
kind. Emails that name a person (the payer, a ticket's opener) are sent once with each
person role as the named one. The test then asserts who received the email, against the
hand-written RECEIVES table, and that the worker, asked just before sending, still agrees.

Email History is opened by every viewer role with one email of each kind on the account;
what it lists, and which entries open, must be exactly READS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from acceptance.actors import browser
from clientarea import channel_table as table
from clientarea.accounts import permissions
from clientarea.accounts.forms import QueuedPasswordResetForm
from clientarea.accounts.models import Account, Contact, Membership, User
from clientarea.accounts.ownership import (
    account_close_confirm,
    account_close_request,
    ownership_transfer_cancel,
    ownership_transfer_start,
)
from clientarea.accounts.policy import NotPermitted, OutOfReach, access_for
from clientarea.accounts.services import (
    contact_create,
    invitation_accept,
    invitation_create,
    membership_grant,
    membership_revoke,
    membership_update,
)
from clientarea.accounts.tests.factories import (
    AccountFactory,
    MembershipFactory,
    UserFactory,
    access_of,
)
from clientarea.api.services import token_create
from clientarea.billing.models import Invoice, Transaction
from clientarea.billing.services import (
    LineInput,
    PayByBankTransfer,
    bank_transfer_confirm,
    invoice_create,
    invoice_pay,
)
from clientarea.billing.tests.factories import make_invoice
from clientarea.hosting.services import service_panel_login, service_password_reveal
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import (
    email_queue,
    notify,
    outbox_deliver_due,
)
from clientarea.security import services as security
from clientarea.security.login_throttle import LoginAttempt, login_failed
from clientarea.security.tests.factories import fresh_code, two_factor_on
from clientarea.security.throttle import limits as throttle_limits
from clientarea.security.twofactor import totp_pending_device
from clientarea.support.services import ticket_open, ticket_reply_customer, ticket_reply_staff
from clientarea.support.tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

ALL = sorted(permissions.ALL_CODES)
SUPPORT_INBOX = "support-inbox@provider.example"


@pytest.fixture(autouse=True)
def _support_inbox(settings: Any) -> None:
    """Staff are told of tickets here (checked by the staff tests; `received` leaves
    their notes out, as they are nobody's of the account)."""
    settings.SUPPORT_STAFF_EMAIL = SUPPORT_INBOX


@dataclass
class World:
    account: Account
    staff: User
    people: dict[str, User] = field(default_factory=dict)  # person role -> user
    contacts: dict[str, Contact] = field(default_factory=dict)  # contact role -> contact

    def role_of(self, email: str) -> str | None:
        for role, user in self.people.items():
            if user.email.lower() == email.lower():
                return role
        for role, contact in self.contacts.items():
            if contact.email.lower() == email.lower():
                return role
        return None


def _confirmed(contact: Contact) -> Contact:
    Contact.objects.filter(pk=contact.pk).update(confirmed_at=timezone.now())
    contact.refresh_from_db()
    return contact


def _set_role(membership: Membership, role: str, owner: User) -> None:
    """Move a person who had All Permissions into `role`."""
    if role.startswith("only:"):
        membership_update(
            membership=membership,
            actor=owner,
            permission_codes=[role.removeprefix("only:")],
            expires_at=None,
        )
    elif role == "revoked":
        membership_revoke(membership=membership, actor=owner)
    elif role == "expired":
        Membership.objects.filter(pk=membership.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )


def build_world(
    named_role: str | None = None, before: Callable[[World, User], Any] | None = None
) -> World:
    """Every role present. The person in `named_role` (if any) first acts with All
    Permissions (`before`: open a ticket, announce a transfer), then takes their role."""
    account = AccountFactory()
    world = World(account=account, staff=UserFactory(is_staff=True, email="staff@example.net"))
    owner = account.owner
    world.people["owner"] = owner
    memberships: dict[str, Membership] = {}
    for role in table.PERSON_ROLES:
        if role == "owner":
            continue
        membership = MembershipFactory(account=account, permissions=ALL)
        memberships[role] = membership
        world.people[role] = membership.user
    for kind in table.ACCOUNT_KINDS:
        world.contacts[f"contact:{kind}"] = _confirmed(
            contact_create(
                account=account,
                actor=owner,
                data={
                    "name": f"Contact {kind}",
                    "email": f"{kind}@contacts.example",
                    "email_kinds": [kind],
                },
            )
        )
    world.contacts["contact:unconfirmed"] = contact_create(
        account=account,
        actor=owner,
        data={
            "name": "Unconfirmed",
            "email": "unconfirmed@contacts.example",
            "email_kinds": list(table.ACCOUNT_KINDS),
        },
    )
    if before is not None and named_role is not None:
        before(world, world.people[named_role])
    for role, membership in memberships.items():
        _set_role(membership, role, owner)
    return world


def received(world: World, since: int) -> dict[str, list[OutboxEmail]]:
    rows = OutboxEmail.objects.filter(pk__gt=since).order_by("pk")
    by_role: dict[str, list[OutboxEmail]] = {}
    for row in rows:
        if row.audience == OutboxEmail.Audience.STAFF:
            continue  # the provider's staff: see test_staff_notes_reach_the_support_inbox_alone
        role = world.role_of(row.to_email) or row.to_email
        by_role.setdefault(role, []).append(row)
    return by_role


def last_pk() -> int:
    row = OutboxEmail.objects.order_by("-pk").first()
    return row.pk if row else 0


# --- how each account email is caused ---------------------------------------------------


def _department() -> Any:
    return DepartmentFactory(name="Technical Support")


def _open_ticket(world: World, person: User) -> Any:
    """Through the service, which asks the policy: someone who may not use the account's
    tickets (their grant, or their access ended) opens none, so nothing is sent."""
    access = access_for(person, world.account.pk)
    if access is None:
        return None
    try:
        return ticket_open(
            access=access,
            department=_department(),
            subject="Site down",
            priority="medium",
            body="It is down.",
        )
    except (OutOfReach, NotPermitted):
        return None


def _announce_transfer(world: World, person: User) -> None:
    """A bank transfer announced by `person`, through the service, which asks the policy:
    one who may not pay the account's invoices announces none through it, so theirs is
    written as announced while they still could (the receipt's copy to the payer follows
    their grant when it is sent, which is what the matrix checks)."""
    invoice = make_invoice(world.account)
    key = f"transfer{invoice.pk:016d}"
    access = access_for(person, world.account.pk)
    try:
        if access is None:
            raise OutOfReach("No such invoice.")
        invoice_pay(
            invoice_id=invoice.pk, access=access, source=PayByBankTransfer(), idempotency_key=key
        )
    except (OutOfReach, NotPermitted):
        Transaction.objects.create(
            invoice=invoice,
            account=world.account,
            currency=invoice.currency,
            idempotency_key=key,
            payer=person,
            payer_label=person.email,
            status=Transaction.Status.PENDING,
            gateway="bank_transfer",
            amount=invoice.balance,
            reference=f"INV-{invoice.number}",
            method_label="Bank transfer",
        )
        Invoice.objects.filter(pk=invoice.pk).update(awaiting_transfer_since=timezone.now())
    world.invoice = invoice


@dataclass(frozen=True)
class Scenario:
    before: Callable[[World, User], Any] | None
    act: Callable[[World, User], Any]


def _notice(world: World, person: User) -> None:
    notify(
        account=world.account,
        kind=table.GENERAL,
        template="notifications/email/notice",
        context={"subject": "Maintenance", "body": "On Saturday."},
    )


def _invoice(world: World, person: User) -> None:
    invoice_create(
        account=world.account,
        lines=[LineInput("Hosting", Decimal("1"), Decimal("10.00"), Decimal("0"))],
        due_date=timezone.localdate() + timedelta(days=14),
        actor=world.staff,
    )


def _receipt(world: World, person: User) -> None:
    bank_transfer_confirm(invoice_id=world.invoice.pk, actor=world.staff)


def _ticket_opened(world: World, person: User) -> None:
    _open_ticket(world, person)


def _staff_reply(world: World, person: User) -> None:
    ticket_reply_staff(ticket=world.ticket, staff=world.staff, body="Fixed.")


def _remember_ticket(world: World, person: User) -> None:
    world.ticket = _open_ticket(world, person)


def _customer_reply(world: World, person: User) -> None:
    ticket = getattr(world, "ticket", None) or _open_ticket(world, world.account.owner)
    ticket_reply_customer(
        ticket=ticket, access=access_of(person, world.account), body="Still down."
    )


def _password_event(world: World, person: User) -> None:
    developer = MembershipFactory(account=world.account, permissions=["manageproducts"]).user
    world.people["actor"] = developer
    service_password_reveal(
        service=ServiceFactory(account=world.account), access=access_of(developer, world.account)
    )


def _panel_login(world: World, person: User) -> None:
    developer = MembershipFactory(account=world.account, permissions=["manageproducts"]).user
    world.people["actor"] = developer
    service_panel_login(
        service=ServiceFactory(account=world.account), access=access_of(developer, world.account)
    )


def _joined(world: World, person: User) -> None:
    owner = world.account.owner
    invitation_create(
        account=world.account, actor=owner, email="joiner@example.org", permission_codes=ALL
    )
    joiner = UserFactory(email="joiner@example.org")
    world.people["actor"] = joiner
    from clientarea.accounts.models import Invitation
    from clientarea.accounts.services import _new_token, invitation_token_hash

    token, token_hash = _new_token()
    Invitation.objects.filter(email="joiner@example.org").update(token_hash=token_hash)
    assert invitation_token_hash(token) == token_hash
    invitation_accept(token=token, user=joiner)


def _transfer_started(world: World, person: User) -> None:
    heir = UserFactory(email="heir@example.org")
    world.people["actor"] = heir  # receives the offer (a personal email)
    ownership_transfer_start(
        account=world.account,
        actor=world.account.owner,
        to_email=heir.email,
        former_owner_stays=True,
        keep_payment_methods=False,
    )


def _close_requested(world: World, person: User) -> None:
    account_close_request(account=world.account, actor=world.account.owner)


ACCOUNT_SCENARIOS: dict[str, Scenario] = {
    "accounts/email/ownership_transfer_notice": Scenario(None, _transfer_started),
    "accounts/email/account_close_requested": Scenario(None, _close_requested),
    "notifications/email/notice": Scenario(None, _notice),
    "billing/email/invoice_created": Scenario(None, _invoice),
    "billing/email/payment_receipt": Scenario(_announce_transfer, _receipt),
    "support/email/ticket_opened": Scenario(None, _ticket_opened),
    "support/email/staff_reply": Scenario(_remember_ticket, _staff_reply),
    "support/email/staff_new_ticket": Scenario(None, _ticket_opened),
    "support/email/staff_customer_reply": Scenario(None, _customer_reply),
    "hosting/email/password_event": Scenario(None, _password_event),
    "hosting/email/panel_login": Scenario(None, _panel_login),
    "accounts/email/invitation_accepted": Scenario(None, _joined),
}


def expected_recipients(route: table.EmailRoute, world: World, named: str | None) -> set[str]:
    """Who should get `route`'s email, from the channel table alone."""
    kind = route.kind
    want: set[str] = set()
    named_may = named is not None and kind in table.RECEIVES[named]
    if table.OWNER in route.to:
        want.add("owner")
    if table.CONTACTS in route.to:
        want |= {role for role in table.CONTACT_ROLES if kind in table.RECEIVES[role]}
    if table.NAMED in route.to and named_may:
        want.add(named)
    if table.OWNER_FALLBACK in route.to and not named_may:
        want.add("owner")
    return want


def account_cases() -> list[Any]:
    out = []
    for route in table.EMAILS:
        if route.kind == table.PERSONAL or table.STAFF in route.to:
            continue
        named_roles = table.PERSON_ROLES if table.NAMED in route.to else (None,)
        for named in named_roles:
            out.append(pytest.param(route, named, id=f"{route.template}-{named or 'all'}"))
    return out


@pytest.mark.parametrize(("route", "named"), account_cases())
def test_account_email_reaches_exactly_the_entitled(
    route: table.EmailRoute, named: str | None
) -> None:
    scenario = ACCOUNT_SCENARIOS[route.template]
    world = build_world(named, scenario.before)
    outbox_deliver_due()  # what setting up the world queued, out of the way
    mail.outbox.clear()
    since = last_pk()
    scenario.act(world, world.people[named] if named else world.account.owner)
    got = received(world, since)
    want = expected_recipients(route, world, named)
    assert set(got) - {"actor"} == want, f"{route.template} named={named}"
    for role, rows in got.items():
        if role != "actor":  # the actor's own personal emails (e.g. an invitation)
            assert all(r.kind == route.kind for r in rows), role
        assert all(r.subject for r in rows)
    # The worker agrees: everything queued is entitled, so it is all sent.
    stats = outbox_deliver_due()
    assert stats["withheld"] == 0
    assert {m.to[0].rsplit("<", 1)[-1].rstrip(">") for m in mail.outbox} >= {
        r.to_email for rows in got.values() for r in rows
    }


def test_named_person_whose_access_ends_after_queueing_gets_nothing() -> None:
    """The revoked payer of the issue: the receipt was queued while they had access and
    revoked before the worker came to it. The worker withholds it; the owner's copy and
    the contacts' go out."""
    world = build_world("all", _announce_transfer)
    payer = world.people["all"]
    outbox_deliver_due()
    mail.outbox.clear()
    since = last_pk()
    _receipt(world, payer)
    queued = received(world, since)
    assert "all" in queued
    membership_revoke(
        membership=Membership.objects.get(account=world.account, user=payer),
        actor=world.account.owner,
    )
    stats = outbox_deliver_due()
    assert stats["withheld"] == 1
    assert payer.email not in {addr for m in mail.outbox for addr in m.to}
    row = queued["all"][0]
    row.refresh_from_db()
    assert row.status == OutboxEmail.Status.WITHHELD


def test_contact_that_changed_after_queueing_gets_nothing() -> None:
    world = build_world()
    outbox_deliver_due()
    mail.outbox.clear()
    since = last_pk()
    _invoice(world, world.account.owner)
    contact = world.contacts["contact:invoice"]
    assert "contact:invoice" in received(world, since)
    Contact.objects.filter(pk=contact.pk).update(email_kinds=["general"])
    outbox_deliver_due()
    assert contact.email not in {addr for m in mail.outbox for addr in m.to}


# --- personal emails: their addressee alone --------------------------------------------


def _personal_scenarios(world: World) -> dict[str, Callable[[], str]]:
    """template -> cause it; returns the address it must go to (and nothing else)."""
    owner = world.account.owner
    subject: User = MembershipFactory(account=world.account, permissions=["tickets"]).user
    device, _ = two_factor_on(subject)

    def invitation() -> str:
        invitation_create(
            account=world.account, actor=owner, email="invitee@example.org", permission_codes=ALL
        )
        return "invitee@example.org"

    def granted() -> str:
        newcomer = UserFactory(email="newcomer@example.org")
        membership_grant(account=world.account, user=newcomer, permission_codes=["tickets"])
        return newcomer.email

    def changed() -> str:
        membership = Membership.objects.get(account=world.account, user=subject)
        membership_update(membership=membership, actor=owner, permission_codes=ALL, expires_at=None)
        return subject.email

    def ended() -> str:
        membership = Membership.objects.get(account=world.account, user=subject)
        membership_revoke(membership=membership, actor=owner)
        return subject.email

    def contact_confirm() -> str:
        contact_create(
            account=world.account,
            actor=owner,
            data={"name": "New", "email": "new-contact@example.org", "email_kinds": ["invoice"]},
        )
        return "new-contact@example.org"

    def reset() -> str:
        form = QueuedPasswordResetForm(data={"email": subject.email})
        assert form.is_valid()
        form.save()
        return subject.email

    def two_factor_enabled() -> str:
        fresh = UserFactory()
        pending = totp_pending_device(fresh)
        security.two_factor_enable(user=fresh, device=pending, token=fresh_code(pending))
        return fresh.email

    def two_factor_disabled() -> str:
        security.two_factor_disable(user=subject)
        return subject.email

    def recovery_codes() -> str:
        security.recovery_codes_regenerate(user=subject)
        return subject.email

    def password_changed() -> str:
        security.password_set(user=subject, password="a long enough new password 42")
        return subject.email

    def email_change_requested() -> str:
        security.email_change_request(user=subject, new_email="moved@example.org")
        return subject.email

    def email_change_confirm() -> str:
        security.email_change_request(user=subject, new_email="moved@example.org")
        return "moved@example.org"

    def email_changed() -> str:
        old = subject.email
        security.email_change_request(user=subject, new_email="moved@example.org")
        row = OutboxEmail.objects.filter(to_email="moved@example.org").latest("pk")
        token = row.body_text.split("/security/email/confirm/", 1)[1].split("/", 1)[0]
        security.email_change_confirm(token=token)
        return old

    def staff_two_factor() -> str:
        security.two_factor_disable_by_staff(user=subject, staff=world.staff)
        return subject.email

    def staff_sessions() -> str:
        browser(subject)  # a logged-in session to end
        security.sessions_end_by_staff(user=subject, staff=world.staff)
        return subject.email

    def staff_email() -> str:
        old = subject.email
        security.email_set_by_staff(
            user=subject, new_email="by-staff@example.org", staff=world.staff
        )
        return old

    def staff_password() -> str:
        security.password_changed_by_staff(user=subject, staff=world.staff)
        return subject.email

    def login_attempts() -> str:
        ceiling, _ = throttle_limits("login-email")
        for n in range(ceiling):
            attempt = LoginAttempt(email=subject.email, ip=f"198.51.100.{n % 250}", device=None)
            login_failed(attempt)
        return subject.email

    def transfer_offer() -> str:
        # On an account of its own: its notices go to people outside the world.
        elsewhere = AccountFactory()
        ownership_transfer_start(
            account=elsewhere,
            actor=elsewhere.owner,
            to_email="heir@example.org",
            former_owner_stays=False,
            keep_payment_methods=False,
        )
        return "heir@example.org"

    def transfer_outcome() -> str:
        elsewhere = AccountFactory()
        transfer = ownership_transfer_start(
            account=elsewhere,
            actor=elsewhere.owner,
            to_email="heir@example.org",
            former_owner_stays=False,
            keep_payment_methods=False,
        )
        ownership_transfer_cancel(transfer=transfer, actor=elsewhere.owner)
        return "heir@example.org"

    def token_created() -> str:
        token_create(
            account=world.account,
            actor=subject,
            name="Monitoring",
            permission_codes=["tickets"],
            expires_at=timezone.now() + timedelta(days=30),
        )
        return subject.email

    def account_closed() -> str:
        elsewhere = AccountFactory()
        account_close_request(account=elsewhere, actor=elsewhere.owner)
        account_close_confirm(account=elsewhere, staff=world.staff)
        return elsewhere.owner.email

    assert device is not None
    return {
        "accounts/email/ownership_transfer_offer": transfer_offer,
        "accounts/email/ownership_transfer_outcome": transfer_outcome,
        "accounts/email/account_closed": account_closed,
        "api/email/token_created": token_created,
        "security/email/login_attempts": login_attempts,
        "security/email/staff_two_factor_disabled": staff_two_factor,
        "security/email/staff_sessions_ended": staff_sessions,
        "security/email/staff_email_changed": staff_email,
        "security/email/staff_password_changed": staff_password,
        "accounts/email/invitation": invitation,
        "accounts/email/access_granted": granted,
        "accounts/email/access_changed": changed,
        "accounts/email/access_ended": ended,
        "accounts/email/contact_confirm": contact_confirm,
        "accounts/email/password_reset": reset,
        "security/email/two_factor_enabled": two_factor_enabled,
        "security/email/two_factor_disabled": two_factor_disabled,
        "security/email/recovery_codes_replaced": recovery_codes,
        "security/email/password_changed": password_changed,
        "security/email/email_change_requested": email_change_requested,
        "security/email/email_change_confirm": email_change_confirm,
        "security/email/email_changed": email_changed,
    }


PERSONAL_TEMPLATES = [e.template for e in table.EMAILS if e.kind == table.PERSONAL]


@pytest.fixture
def sent_templates(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """(template, to_email, kind) of every email queued, in order: each door renders its
    template just before it writes the outbox row."""
    from clientarea.notifications import services as outbox

    log: list[tuple[str, str, str]] = []
    current: dict[str, str] = {}
    real_render, real_queue = outbox.render_email, outbox.email_queue

    def render(template: str, context: dict[str, Any]) -> tuple[str, str]:
        current["template"] = template
        return real_render(template, context)

    def queue(**kwargs: Any) -> OutboxEmail:
        row = real_queue(**kwargs)
        log.append((current.pop("template", ""), row.to_email, row.kind))
        return row

    monkeypatch.setattr(outbox, "render_email", render)
    monkeypatch.setattr(outbox, "email_queue", queue)
    return log


@pytest.mark.parametrize("template", PERSONAL_TEMPLATES)
def test_personal_email_goes_to_its_addressee_alone(
    template: str, sent_templates: list[tuple[str, str, str]]
) -> None:
    world = build_world()
    scenarios = _personal_scenarios(world)
    sent_templates.clear()
    addressee = scenarios[template]()
    mine = [(to, kind) for t, to, kind in sent_templates if t == template]
    assert mine == [(addressee, table.PERSONAL)]
    # Nobody in the world but the person it is about was sent anything by the action,
    # except the owner-only security notices the table lists.
    for sent, to, kind in sent_templates:
        if world.role_of(to) is not None:
            assert kind == table.SECURITY and world.role_of(to) == "owner", (sent, to)


# --- notes to the provider's support staff ------------------------------------------------

STAFF_ROUTES = [e for e in table.EMAILS if table.STAFF in e.to]
TICKET_ROLES = [r for r in table.PERSON_ROLES if table.SUPPORT in table.RECEIVES[r]]


@pytest.mark.parametrize("role", TICKET_ROLES)
@pytest.mark.parametrize("route", STAFF_ROUTES, ids=lambda r: r.template)
def test_staff_notes_reach_the_support_inbox_alone(
    route: table.EmailRoute, role: str, sent_templates: list[tuple[str, str, str]]
) -> None:
    """Every new ticket and customer reply, whoever of the account writes it, is one note
    to the support inbox: with no account, so no Email History lists it, and nobody of
    the account is sent it."""
    world = build_world()
    person = world.people[role]
    if route.template.endswith("customer_reply"):
        world.ticket = _open_ticket(world, person)
    since = last_pk()
    sent_templates.clear()
    ACCOUNT_SCENARIOS[route.template].act(world, person)
    notes = OutboxEmail.objects.filter(pk__gt=since, audience=OutboxEmail.Audience.STAFF)
    assert [(r.to_email, r.account_id, r.kind) for r in notes] == [
        (SUPPORT_INBOX, None, route.kind)
    ]
    assert [t for t, to, _ in sent_templates if to == SUPPORT_INBOX] == [route.template]
    for template, to, _ in sent_templates:
        if template == route.template:
            assert world.role_of(to) is None, to
    (note,) = notes
    assert "/admin/support/ticket/" in note.body_text
    for viewer in (world.account.owner, world.people["all"]):
        client = browser(viewer, world.account)
        assert note.subject not in client.get(reverse("notifications:history")).content.decode()
        detail = client.get(reverse("notifications:history_detail", args=[note.pk]))
        assert detail.status_code == 404
    assert outbox_deliver_due()["withheld"] == 0
    assert any(SUPPORT_INBOX in m.to[0] for m in mail.outbox)


def test_no_support_inbox_no_staff_notes(settings: Any) -> None:
    settings.SUPPORT_STAFF_EMAIL = ""
    world = build_world()
    since = last_pk()
    _customer_reply(world, world.account.owner)
    assert not OutboxEmail.objects.filter(pk__gt=since, audience="staff").exists()


# --- completeness ------------------------------------------------------------------------


def email_templates_in_code() -> set[str]:
    src = Path(settings.BASE_DIR) / "src" / "clientarea"
    found = set()
    for path in src.glob("*/templates/*/email/*.txt"):
        app_dir = path.parent.parent.name
        found.add(f"{app_dir}/email/{path.stem}")
    return found


def test_every_email_template_is_in_the_channel_table() -> None:
    assert email_templates_in_code() == set(table.BY_TEMPLATE)


def test_every_email_of_the_table_has_a_scenario() -> None:
    world = build_world()
    personal = set(_personal_scenarios(world))
    missing = [
        e.template
        for e in table.EMAILS
        if e.template not in ACCOUNT_SCENARIOS and e.template not in personal
    ]
    assert missing == []


def test_the_table_covers_every_role_and_kind() -> None:
    assert set(table.RECEIVES) == {*table.PERSON_ROLES, *table.CONTACT_ROLES}
    assert set(table.READS) == set(table.VIEWER_ROLES)
    assert {e.kind for e in table.EMAILS} <= {*table.ACCOUNT_KINDS, table.SECURITY, table.PERSONAL}
    assert set(permissions.EmailKind.values) == {
        *table.ACCOUNT_KINDS,
        table.SECURITY,
        table.PERSONAL,
    }


# --- Email History x viewer role -----------------------------------------------------------


def _viewer(account: Account, role: str) -> User:
    if role == "owner":
        return account.owner
    if role.startswith("emails+"):
        codes = ["emails", role.removeprefix("emails+")]
    elif role == "only:emails":
        codes = ["emails"]
    elif role == "no-emails":
        codes = [c for c in ALL if c != "emails"]
    else:
        codes = ALL
    membership = MembershipFactory(account=account, permissions=codes)
    if role == "expired":
        membership.expires_at = timezone.now() - timedelta(minutes=1)
        membership.save()
    return membership.user


def _history_entries(account: Account, viewer: User) -> dict[str, OutboxEmail]:
    other = UserFactory()
    entries = {}
    for kind in (*table.ACCOUNT_KINDS, table.SECURITY):
        entries[kind] = email_queue(
            to_email=account.owner.email,
            subject=f"About {kind}",
            body=f"The {kind} text.",
            kind=kind,
            account=account,
            audience="owner",
            recipient_user=account.owner,
        )
    entries["personal:own"] = email_queue(
        to_email=viewer.email,
        subject="Yours",
        body="Your own text.",
        kind=table.PERSONAL,
        account=account,
        recipient_user=viewer,
    )
    entries["personal:other"] = email_queue(
        to_email=other.email,
        subject="Theirs",
        body="Someone else's text.",
        kind=table.PERSONAL,
        account=account,
        recipient_user=other,
    )
    return entries


@pytest.mark.parametrize("role", table.VIEWER_ROLES)
def test_email_history_shows_exactly_what_the_grant_covers(role: str) -> None:
    account: Account = AccountFactory()
    viewer = _viewer(account, role)
    client = browser(viewer, account)
    if role == "revoked":
        membership_revoke(
            membership=Membership.objects.get(account=account, user=viewer), actor=account.owner
        )
    entries = _history_entries(account, viewer)
    listing = client.get(reverse("notifications:history"))
    readable = table.READS[role]
    if not readable:
        assert listing.status_code in (302, 403)
    else:
        assert listing.status_code == 200
        page = listing.content.decode()
        listed = {name for name, row in entries.items() if row.subject in page}
        assert listed == readable
    for name, row in entries.items():
        detail = client.get(reverse("notifications:history_detail", args=[row.pk]))
        if name in readable:
            assert detail.status_code == 200, name
            assert row.body_text in detail.content.decode()
        else:
            assert detail.status_code in (302, 403, 404), name
            assert row.body_text.encode() not in detail.content


def test_a_queued_personal_email_with_a_link_is_not_shown_even_to_its_addressee() -> None:
    account = AccountFactory()
    viewer = MembershipFactory(account=account, permissions=["emails"]).user
    row = email_queue(
        to_email=viewer.email,
        subject="Your link",
        body="Open https://example.test/secret-link",
        kind=table.PERSONAL,
        account=account,
        recipient_user=viewer,
        redact=["https://example.test/secret-link"],
    )
    client = browser(viewer, account)
    page = client.get(reverse("notifications:history_detail", args=[row.pk])).content.decode()
    assert "secret-link" not in page


def test_email_history_costs_the_same_queries_with_more_emails(
    django_assert_max_num_queries: Any,
) -> None:
    account = AccountFactory()
    viewer = MembershipFactory(account=account, permissions=["emails", "invoices"]).user
    client = browser(viewer, account)
    for _ in range(3):
        _history_entries(account, viewer)
    client.get(reverse("notifications:history"))
    with django_assert_max_num_queries(12):
        client.get(reverse("notifications:history"))


# --- every template gets every variable it names ----------------------------------------

MISSING = "@@MISSING:%s@@"
MARKUP_NAME = 'Acme <img src=x> & Sons\' "Web"'


def _templates_with_marker() -> list[dict[str, Any]]:
    engine: dict[str, Any] = dict(settings.TEMPLATES[0])
    engine["OPTIONS"] = {**engine["OPTIONS"], "string_if_invalid": MISSING}
    return [engine]


def _render_cases() -> list[Any]:
    out = []
    for route in table.EMAILS:
        named = "all" if table.NAMED in route.to else None  # a sub-account is named
        out.append(pytest.param(route.template, named, id=route.template))
    return out


@pytest.mark.parametrize(("template", "named"), _render_cases())
def test_every_email_renders_every_variable_through_its_real_trigger(
    template: str, named: str | None, sent_templates: list[tuple[str, str, str]]
) -> None:
    """A variable the sending code does not pass renders as a marker (instead of the
    silent empty string that gave "support ticket for :"); no email may contain one. The
    account's name holds markup, which every email shows as typed, never escaped."""
    with override_settings(TEMPLATES=_templates_with_marker()):
        if template in ACCOUNT_SCENARIOS:
            scenario = ACCOUNT_SCENARIOS[template]
            world = build_world(named, scenario.before)
            Account.objects.filter(pk=world.account.pk).update(company_name=MARKUP_NAME)
            world.account.refresh_from_db()
            since = last_pk()
            sent_templates.clear()
            scenario.act(world, world.people[named] if named else world.account.owner)
        else:
            world = build_world()
            Account.objects.filter(pk=world.account.pk).update(company_name=MARKUP_NAME)
            world.account.refresh_from_db()
            scenarios = _personal_scenarios(world)
            since = last_pk()
            sent_templates.clear()
            scenarios[template]()
    assert template in {t for t, _, _ in sent_templates}
    rows = OutboxEmail.objects.filter(pk__gt=since)
    assert rows
    for row in rows:
        for text in (row.subject, row.body_text):
            assert "@@MISSING" not in text, (template, text)
            assert " for :" not in text and " on :" not in text, (template, text)
            # Plain text: never HTML-escaped, the subject included.
            assert "&lt;" not in text and "&amp;" not in text and "&#x27;" not in text, text
    ours = [row for row in rows if row.account_id == world.account.pk]
    if ours and "{{ account.display_name }}" in _template_source(template):
        assert any(MARKUP_NAME in row.subject + row.body_text for row in ours), template


def _template_source(template: str) -> str:
    from django.template import Engine

    return str(Engine.get_default().get_template(f"{template}.txt").source)
