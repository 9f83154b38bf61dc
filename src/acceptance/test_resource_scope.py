"""Resource scope, from the attacker's side and the owner's.

A sub-account limited to chosen services and domains sees and acts on only those: every
other service, domain, ticket and product/domain email of the account is a 404 exactly
like another account's, whether asked by page, by forged POST or by calling the service
function directly. The owner's forged scopes (another account's ids, unknown ids or kinds)
are refused with a message and change nothing. Lists and the dashboard cost the same
number of queries whatever the scope's size.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from acceptance.actors import browser, post
from clientarea.accounts.models import Account, Invitation, Membership, User
from clientarea.accounts.policy import OutOfReach, access_for, may, may_receive_email
from clientarea.accounts.services import (
    AccessError,
    InvitationError,
    invitation_accept,
    invitation_create,
    membership_grant,
    membership_update,
)
from clientarea.accounts.tests.factories import AccountFactory, UserFactory, access_of
from clientarea.accounts.tests.helpers import invitation_token_from_outbox
from clientarea.audit.models import AuditEvent
from clientarea.domains import services as domain_services
from clientarea.domains.models import Domain
from clientarea.domains.selectors import domain_list_for
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting import services as hosting_services
from clientarea.hosting.models import Service
from clientarea.hosting.selectors import service_list_for
from clientarea.hosting.tests.factories import SERVICE_PASSWORD, ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.selectors import email_history_for
from clientarea.notifications.services import notify, outbox_recipient_entitled
from clientarea.support import services as support_services
from clientarea.support.models import Ticket
from clientarea.support.tests.factories import (
    AttachmentFactory,
    DepartmentFactory,
    TicketFactory,
    TicketMessageFactory,
)

pytestmark = pytest.mark.django_db

DEVELOPER = ["manageproducts", "managedomains", "tickets", "emails"]
NEW_PANEL_PASSWORD = "Quartz-Meadow-Lantern-93"


class World:
    def __init__(self) -> None:
        self.account: Account = AccountFactory(company_name="Acme")
        self.owner: User = self.account.owner
        self.site: Service = ServiceFactory(account=self.account, product_name="Site hosting")
        self.other_service: Service = ServiceFactory(
            account=self.account, product_name="Other hosting"
        )
        self.site_domain: Domain = DomainFactory(account=self.account, name="site.example")
        self.other_domain: Domain = DomainFactory(account=self.account, name="other.example")
        self.elsewhere: Account = AccountFactory(company_name="Globex")
        self.foreign_service: Service = ServiceFactory(account=self.elsewhere)
        self.dev: User = UserFactory(email="dev@example.com", first_name="Dana")
        self.membership = membership_grant(
            account=self.account,
            user=self.dev,
            permission_codes=DEVELOPER,
            scope={"service": [self.site.pk], "domain": [self.site_domain.pk]},
            actor=self.owner,
        )

    def client(self) -> Any:
        return browser(self.dev, self.account)


@pytest.fixture
def world() -> World:
    return World()


def _unchanged(service: Service, domain: Domain) -> tuple[Any, ...]:
    s = Service.objects.get(pk=service.pk)
    d = Domain.objects.get(pk=domain.pk)
    return (s.password_ciphertext, d.nameservers, d.registrar_lock, d.auto_renew)


# --- the policy ------------------------------------------------------------------------


def test_access_carries_the_scope_and_may_decides_per_object(world: World) -> None:
    access = access_for(world.dev, world.account.pk)
    assert access is not None and access.is_scoped
    assert access.in_scope("service", world.site.pk)
    assert not access.in_scope("service", world.other_service.pk)
    assert may(world.dev, "manageproducts", world.account, obj=world.site)
    assert not may(world.dev, "manageproducts", world.account, obj=world.other_service)
    assert not may(world.dev, "manageproducts", world.account, obj=world.foreign_service)
    assert may(world.dev, "managedomains", world.account, obj=world.site_domain)
    assert not may(world.dev, "managedomains", world.account, obj=world.other_domain)
    owner = access_for(world.owner, world.account.pk)
    assert owner is not None and not owner.is_scoped
    assert owner.in_scope("service", world.other_service.pk)


def test_lists_and_dashboard_show_only_the_scoped_items(world: World) -> None:
    access = access_for(world.dev, world.account.pk)
    assert access is not None
    assert [s.pk for s in service_list_for(access=access)] == [world.site.pk]
    assert [d.pk for d in domain_list_for(access=access)] == [world.site_domain.pk]
    client = world.client()
    services_page = client.get(reverse("hosting:list")).content.decode()
    assert "Site hosting" in services_page and "Other hosting" not in services_page
    domains_page = client.get(reverse("domains:list")).content.decode()
    assert "site.example" in domains_page and "other.example" not in domains_page
    dashboard = client.get(reverse("core:dashboard")).content.decode()
    assert '<span class="tile-count">1</span><span class="tile-label">Active services' in (
        dashboard
    )
    assert '<span class="tile-count">1</span><span class="tile-label">Domains' in dashboard


# --- pages: out of scope is a 404 and changes nothing -------------------------------------


def test_out_of_scope_detail_pages_are_404_like_another_accounts(world: World) -> None:
    client = world.client()
    assert client.get(reverse("hosting:detail", args=[world.site.pk])).status_code == 200
    assert client.get(reverse("domains:detail", args=[world.site_domain.pk])).status_code == 200
    for url in (
        reverse("hosting:detail", args=[world.other_service.pk]),
        reverse("hosting:detail", args=[world.foreign_service.pk]),
        reverse("hosting:password_change", args=[world.other_service.pk]),
        reverse("domains:detail", args=[world.other_domain.pk]),
        reverse("domains:nameservers", args=[world.other_domain.pk]),
    ):
        assert client.get(url).status_code == 404, url


def test_forged_posts_to_out_of_scope_items_are_404_and_change_nothing(world: World) -> None:
    client = world.client()
    before = _unchanged(world.other_service, world.other_domain)
    events, emails = AuditEvent.objects.count(), OutboxEmail.objects.count()
    other_service, other_domain = world.other_service.pk, world.other_domain.pk
    attempts = [
        (reverse("hosting:password_reveal", args=[other_service]), {}),
        (
            reverse("hosting:password_change", args=[other_service]),
            {"new_password1": NEW_PANEL_PASSWORD, "new_password2": NEW_PANEL_PASSWORD},
        ),
        (
            reverse("domains:nameservers", args=[other_domain]),
            {"ns1": "ns1.evil.example", "ns2": "ns2.evil.example"},
        ),
        (reverse("domains:registrar_lock", args=[other_domain]), {"enabled": "off"}),
        (reverse("domains:auto_renew", args=[other_domain]), {"enabled": "off"}),
    ]
    for url, data in attempts:
        response = post(client, url, data)
        assert response.status_code == 404, url
        assert SERVICE_PASSWORD not in response.content.decode()
    assert _unchanged(world.other_service, world.other_domain) == before
    assert AuditEvent.objects.count() == events
    assert OutboxEmail.objects.count() == emails


def test_the_scoped_item_still_works_end_to_end(world: World) -> None:
    client = world.client()
    response = post(client, reverse("hosting:password_reveal", args=[world.site.pk]))
    assert response.status_code == 200 and SERVICE_PASSWORD in response.content.decode()
    response = post(
        client, reverse("domains:auto_renew", args=[world.site_domain.pk]), {"enabled": "off"}
    )
    assert response.status_code == 302
    assert Domain.objects.get(pk=world.site_domain.pk).auto_renew is False


# --- the service functions refuse by themselves (the API calls them directly) -------------


def test_service_functions_refuse_an_out_of_scope_actor(world: World) -> None:
    before = _unchanged(world.other_service, world.other_domain)
    with pytest.raises(OutOfReach):
        hosting_services.service_password_reveal(
            service=world.other_service, access=access_of(world.dev, world.account)
        )
    with pytest.raises(OutOfReach):
        hosting_services.service_password_change(
            service=world.other_service,
            access=access_of(world.dev, world.account),
            new_password=NEW_PANEL_PASSWORD,
        )
    with pytest.raises(OutOfReach):
        domain_services.domain_set_nameservers(
            domain=world.other_domain,
            access=access_of(world.dev, world.account),
            nameservers=["ns1.evil.example", "ns2.evil.example"],
        )
    with pytest.raises(OutOfReach):
        domain_services.domain_set_registrar_lock(
            domain=world.other_domain, access=access_of(world.dev, world.account), locked=False
        )
    with pytest.raises(OutOfReach):
        domain_services.domain_set_auto_renew(
            domain=world.other_domain, access=access_of(world.dev, world.account), enabled=False
        )
    # Another account's owner, too.
    with pytest.raises(OutOfReach):
        hosting_services.service_password_reveal(
            service=world.foreign_service, access=access_of(world.owner, world.account)
        )
    assert _unchanged(world.other_service, world.other_domain) == before
    assert hosting_services.service_password_reveal(
        service=world.site, access=access_of(world.dev, world.account)
    ) == (SERVICE_PASSWORD)


# --- tickets -------------------------------------------------------------------------------


def test_scoped_tickets_are_their_own_and_those_about_their_items(world: World) -> None:
    own = TicketFactory(account=world.account, opener=world.dev, subject="Mine")
    about_site = TicketFactory(account=world.account, service=world.site, subject="About site")
    about_domain = TicketFactory(
        account=world.account, domain=world.site_domain, subject="About domain"
    )
    hidden = [
        TicketFactory(account=world.account, subject="General question"),
        TicketFactory(account=world.account, service=world.other_service, subject="Other site"),
        TicketFactory(account=world.account, domain=world.other_domain, subject="Other domain"),
    ]
    client = world.client()
    page = client.get(reverse("support:ticket_list")).content.decode()
    for ticket in (own, about_site, about_domain):
        assert ticket.subject in page
        assert client.get(reverse("support:ticket_detail", args=[ticket.pk])).status_code == 200
    for ticket in hidden:
        assert ticket.subject not in page
        assert client.get(reverse("support:ticket_detail", args=[ticket.pk])).status_code == 404
        response = post(client, reverse("support:ticket_reply", args=[ticket.pk]), {"message": "x"})
        assert response.status_code == 404
        response = post(client, reverse("support:ticket_close", args=[ticket.pk]))
        assert response.status_code == 404
        assert Ticket.objects.get(pk=ticket.pk).status == ticket.status
    # The service functions refuse by themselves too.
    dev = access_of(world.dev, world.account)
    with pytest.raises(OutOfReach):
        support_services.ticket_reply_customer(ticket=hidden[0], access=dev, body="x")
    with pytest.raises(OutOfReach):
        support_services.ticket_close(ticket=hidden[0], access=dev)
    support_services.ticket_reply_customer(ticket=about_site, access=dev, body="Thanks")
    attachment = AttachmentFactory(message=TicketMessageFactory(ticket=hidden[1]))
    url = reverse("support:attachment_download", args=[attachment.pk])
    assert client.get(url).status_code == 404
    # The owner sees them all.
    owner_page = browser(world.owner, world.account).get(reverse("support:ticket_list"))
    owner_text = owner_page.content.decode()
    for ticket in hidden:
        assert str(ticket.subject) in owner_text


def test_open_ticket_offers_only_the_items_the_opener_may_see(world: World) -> None:
    department = DepartmentFactory(name="Technical Support")
    client = world.client()
    page = client.get(reverse("support:ticket_open")).content.decode()
    assert "Related service or domain" in page
    assert "Site hosting" in page and "site.example" in page
    assert "Other hosting" not in page and "other.example" not in page
    data = {
        "department": department.pk,
        "subject": "Help",
        "priority": "medium",
        "message": "Please help.",
    }
    # A forged item outside the scope (or of another account) is refused, nothing opened.
    for forged in (f"service:{world.other_service.pk}", f"service:{world.foreign_service.pk}"):
        response = post(client, reverse("support:ticket_open"), {**data, "about": forged})
        assert response.status_code == 200
        assert "Choose one of the services or domains listed." in response.content.decode()
    assert not Ticket.objects.filter(subject="Help").exists()
    response = post(
        client, reverse("support:ticket_open"), {**data, "about": f"domain:{world.site_domain.pk}"}
    )
    assert response.status_code == 302
    ticket = Ticket.objects.get(subject="Help")
    assert ticket.domain_id == world.site_domain.pk and ticket.service_id is None


# --- email ---------------------------------------------------------------------------------


def test_email_history_and_delivery_follow_the_scope(world: World) -> None:
    context = {"subject": "Maintenance", "body": "Tonight."}
    template = "notifications/email/notice"
    about_site = notify(
        account=world.account, kind="product", template=template, context=context,
        people=[world.dev], about=("service", world.site.pk),
    )  # fmt: skip
    about_other = notify(
        account=world.account, kind="product", template=template, context=context,
        people=[world.dev], about=("service", world.other_service.pk),
    )  # fmt: skip
    general = notify(account=world.account, kind="general", template=template, context=context)
    # The developer was sent only the email about their site.
    assert "dev@example.com" in [r.to_email for r in about_site]
    assert "dev@example.com" not in [r.to_email for r in about_other]
    access = access_for(world.dev, world.account.pk)
    assert access is not None
    readable = set(email_history_for(access).values_list("pk", flat=True))
    assert {r.pk for r in about_site} <= readable
    assert not {r.pk for r in about_other} & readable
    assert {r.pk for r in general} <= readable
    client = world.client()
    hidden = about_other[0]
    url = reverse("notifications:history_detail", args=[hidden.pk])
    assert client.get(url).status_code == 404
    # The worker's re-check: queued for the developer while the item was theirs, then the
    # scope changed: withheld.
    row = next(r for r in about_site if r.to_email == "dev@example.com")
    assert outbox_recipient_entitled(row)
    membership_update(
        membership=world.membership,
        actor=world.owner,
        permission_codes=DEVELOPER,
        expires_at=None,
        scope={"service": [], "domain": [world.site_domain.pk]},
    )
    assert not outbox_recipient_entitled(row)
    assert not may_receive_email(
        world.dev, "product", world.account, about=("service", world.site.pk)
    )


def test_a_scoped_member_cannot_give_contacts_per_item_kinds(world: World) -> None:
    access = access_for(world.dev, world.account.pk)
    assert access is not None
    from clientarea.accounts.policy import contact_kinds_grantable

    assert "product" not in contact_kinds_grantable(access)
    assert "domain" not in contact_kinds_grantable(access)
    assert "support" not in contact_kinds_grantable(access)


def test_replies_to_tickets_outside_the_scope_are_not_in_email_history(world: World) -> None:
    """The reviewer's attack: the owner opens a ticket about a service outside the
    developer's scope; staff answer it with a secret. The ticket is a 404 to the
    developer, and so is the email of the answer; the developer's own ticket's answer is
    theirs to read."""
    staff = UserFactory(is_staff=True)
    department = DepartmentFactory(name="Technical Support")
    hidden = support_services.ticket_open(
        access=access_of(world.owner, world.account), department=department,
        subject="Other site down", priority="high", body="Help",
        about=("service", world.other_service.pk),
    )  # fmt: skip
    support_services.ticket_reply_staff(ticket=hidden, staff=staff, body="root pw is hunter2")
    mine = support_services.ticket_open(
        access=access_of(world.dev, world.account), department=department,
        subject="My site", priority="low", body="Help", about=("service", world.site.pk),
    )  # fmt: skip
    support_services.ticket_reply_staff(ticket=mine, staff=staff, body="Fixed your site")
    client = world.client()
    page = client.get(reverse("notifications:history")).content.decode()
    assert "Fixed your site" not in page  # bodies are never listed; subjects are
    secret = OutboxEmail.objects.get(body_text__contains="hunter2")
    assert client.get(reverse("notifications:history_detail", args=[secret.pk])).status_code == 404
    assert secret.pk not in set(
        email_history_for(access_for(world.dev, world.account.pk)).values_list("pk", flat=True)
    )
    answer = OutboxEmail.objects.get(body_text__contains="Fixed your site")
    assert client.get(reverse("notifications:history_detail", args=[answer.pk])).status_code == 200


def test_a_contact_chosen_before_the_scope_stops_receiving_per_item_kinds(world: World) -> None:
    """A support contact chosen while the developer had every item keeps nothing once
    the developer is limited to one site."""
    from clientarea.accounts.models import Contact
    from clientarea.accounts.services import contact_create, membership_update

    membership_update(membership=world.membership, actor=world.owner,
                      permission_codes=[*DEVELOPER, "contacts"], expires_at=None,
                      scope=None)  # fmt: skip
    contact = contact_create(
        account=world.account, actor=world.dev,
        data={"name": "Mine", "email": "mine@dev.example", "email_kinds": ["support"]},
    )  # fmt: skip
    Contact.objects.filter(pk=contact.pk).update(confirmed_at=contact.created_at)
    rows = notify(account=world.account, kind="support", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert "mine@dev.example" in {r.to_email for r in rows}
    membership_update(membership=world.membership, actor=world.owner,
                      permission_codes=[*DEVELOPER, "contacts"], expires_at=None,
                      scope={"service": [world.site.pk], "domain": []})  # fmt: skip
    rows = notify(account=world.account, kind="support", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert "mine@dev.example" not in {r.to_email for r in rows}


# --- the owner chooses the scope: forged scopes are refused --------------------------------


def test_forged_scopes_are_refused_with_a_message_and_change_nothing(world: World) -> None:
    before = Membership.objects.values("scope", "permissions").get(pk=world.membership.pk)
    events = AuditEvent.objects.count()
    for scope, message in (
        ({"service": [world.foreign_service.pk]}, "Choose only services of this account"),
        ({"service": [999999]}, "Choose only services of this account"),
        ({"domain": [DomainFactory(account=world.elsewhere).pk]}, "Choose only domains of this"),
        ({"invoice": [1]}, "A scope can name only services and domains."),
    ):
        with pytest.raises(AccessError, match=message):
            membership_update(
                membership=world.membership,
                actor=world.owner,
                permission_codes=DEVELOPER,
                expires_at=None,
                scope=scope,
            )
        with pytest.raises(InvitationError, match=message):
            invitation_create(
                account=world.account,
                actor=world.owner,
                email="new@example.com",
                permission_codes=DEVELOPER,
                scope=scope,
            )
    assert Membership.objects.values("scope", "permissions").get(pk=world.membership.pk) == (before)
    assert not Invitation.objects.filter(email="new@example.com").exists()
    assert AuditEvent.objects.count() == events


def test_forged_scope_ids_in_the_forms_are_refused(world: World) -> None:
    client = browser(world.owner, world.account)
    base = {"access": "choose", "permissions": DEVELOPER, "scope_mode": "only"}
    response = post(
        client,
        reverse("accounts:user_invite"),
        {**base, "email": "new@example.com", "scope_service": [world.foreign_service.pk]},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose only services of this account" in page
    assert not Invitation.objects.filter(email="new@example.com").exists()
    before = Membership.objects.get(pk=world.membership.pk).scope
    response = post(
        client,
        reverse("accounts:user_edit", args=[world.membership.pk]),
        {**base, "scope_domain": [world.foreign_service.pk + 1000]},
    )
    assert response.status_code == 200
    assert "Choose only domains of this account" in response.content.decode()
    assert Membership.objects.get(pk=world.membership.pk).scope == before
    # "Only these" with nothing ticked is refused too.
    response = post(client, reverse("accounts:user_edit", args=[world.membership.pk]), base)
    assert "Tick at least one service or domain" in response.content.decode()
    assert Membership.objects.get(pk=world.membership.pk).scope == before


def test_a_sub_account_cannot_set_a_scope(world: World) -> None:
    partner = UserFactory()
    membership_grant(
        account=world.account, user=partner, permission_codes=["products"], actor=world.owner
    )
    with pytest.raises(AccessError):
        membership_update(
            membership=world.membership,
            actor=partner,
            permission_codes=DEVELOPER,
            expires_at=None,
            scope=None,
        )
    assert Membership.objects.get(pk=world.membership.pk).scope is not None


# --- setting and changing the scope ---------------------------------------------------------


def test_invite_scoped_then_accept_and_the_scope_is_the_grant(world: World) -> None:
    client = browser(world.owner, world.account)
    form = client.get(reverse("accounts:user_invite")).content.decode()
    assert "All services and domains" in form and "Only these" in form
    assert "Invoices, contacts and the account profile are account-wide" in form
    response = post(
        client,
        reverse("accounts:user_invite"),
        {
            "email": "webdev@example.com",
            "access": "choose",
            "permissions": ["manageproducts"],
            "scope_mode": "only",
            "scope_service": [world.site.pk],
        },
    )
    assert response.status_code == 302
    invitation = Invitation.objects.get(email="webdev@example.com")
    assert invitation.scope == {"service": [world.site.pk], "domain": []}
    email = OutboxEmail.objects.filter(to_email="webdev@example.com").latest("pk")
    assert "Only on these services and domains:" in email.body_text
    assert "Site hosting" in email.body_text and "Other hosting" not in email.body_text
    event = AuditEvent.objects.filter(action="invitation.sent").latest("pk")
    assert event.changes["scope"] == {"service": [world.site.pk], "domain": []}
    listing = client.get(reverse("accounts:users")).content.decode()
    assert "Only" in listing and "Site hosting" in listing
    user = UserFactory(email="webdev@example.com")
    membership = invitation_accept(
        token=invitation_token_from_outbox("webdev@example.com"), user=user
    )
    assert membership.scope == {"service": [world.site.pk], "domain": []}
    access = access_for(user, world.account.pk)
    assert access is not None and [s.pk for s in service_list_for(access=access)] == [world.site.pk]


def test_a_role_preset_keeps_the_chosen_scope(world: World) -> None:
    client = browser(world.owner, world.account)
    response = post(
        client,
        reverse("accounts:user_invite"),
        {
            "email": "webdev@example.com",
            "access": "choose",
            "permissions": [],
            "scope_mode": "only",
            "scope_domain": [world.site_domain.pk],
            "preset": "developer",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert f'value="{world.site_domain.pk}"' in page
    assert 'value="only" id="id_scope_mode_1" checked' in page.replace("\n", " ") or (
        'value="only"' in page and "checked" in page
    )
    assert 'value="webdev@example.com"' in page
    assert f'name="scope_domain" value="{world.site_domain.pk}" id' in page
    assert not Invitation.objects.exists()
    assert "Choose at least one permission" not in page


def test_changing_the_scope_is_audited_and_emailed(world: World) -> None:
    client = browser(world.owner, world.account)
    response = post(
        client,
        reverse("accounts:user_edit", args=[world.membership.pk]),
        {"access": "choose", "permissions": DEVELOPER, "scope_mode": "all"},
    )
    assert response.status_code == 302
    world.membership.refresh_from_db()
    assert world.membership.scope is None
    event = AuditEvent.objects.filter(action="membership.permissions_changed").latest("pk")
    assert event.changes["scope"] == [
        {"service": [world.site.pk], "domain": [world.site_domain.pk]},
        None,
    ]
    email = OutboxEmail.objects.filter(to_email="dev@example.com").latest("pk")
    assert "Your services and domains changed." in email.body_text
    assert "On all services and domains of the account." in email.body_text
    # Leaving the scope out keeps it.
    membership_update(
        membership=world.membership,
        actor=world.owner,
        permission_codes=DEVELOPER,
        expires_at=None,
        scope={"service": [world.other_service.pk]},
    )
    membership_update(
        membership=world.membership, actor=world.owner, permission_codes=["tickets"],
        expires_at=None,
    )  # fmt: skip
    world.membership.refresh_from_db()
    assert world.membership.scope == {"service": [world.other_service.pk], "domain": []}


# --- items that leave the account ---------------------------------------------------------


def test_a_deleted_or_moved_item_leaves_every_scope(world: World) -> None:
    invitation = invitation_create(
        account=world.account,
        actor=world.owner,
        email="later@example.com",
        permission_codes=DEVELOPER,
        scope={"service": [world.site.pk]},
    )
    world.site.account = world.elsewhere
    world.site.save()
    world.membership.refresh_from_db()
    invitation.refresh_from_db()
    assert world.membership.scope == {"service": [], "domain": [world.site_domain.pk]}
    assert invitation.scope == {"service": [], "domain": []}
    assert AuditEvent.objects.filter(action="membership.scope_item_removed").count() == 1
    told = OutboxEmail.objects.filter(to_email="dev@example.com").latest("pk")
    assert "Your services and domains changed." in told.body_text
    assert "left Acme" in told.body_text and "Site hosting" not in told.body_text
    # Moving it back does not bring it back into the scope.
    world.site.account = world.account
    world.site.save()
    access = access_for(world.dev, world.account.pk)
    assert access is not None and list(service_list_for(access=access)) == []
    # Deleting the last scoped item: the scope is empty, and reaches nothing (not all).
    world.site_domain.delete()
    world.membership.refresh_from_db()
    assert world.membership.scope == {"service": [], "domain": []}
    access = access_for(world.dev, world.account.pk)
    assert access is not None
    assert list(service_list_for(access=access)) == []
    assert list(domain_list_for(access=access)) == []
    client = world.client()
    assert client.get(reverse("hosting:detail", args=[world.other_service.pk])).status_code == 404
    listing = browser(world.owner, world.account).get(reverse("accounts:users")).content.decode()
    assert "no service or domain is visible until you choose some" in listing
    edit = browser(world.owner, world.account).get(
        reverse("accounts:user_edit", args=[world.membership.pk])
    )
    assert "no service or domain is visible until you choose some" in edit.content.decode()


# --- query counts ---------------------------------------------------------------------------


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_and_dashboard_queries_do_not_grow_with_the_scope(world: World) -> None:
    urls = [
        reverse("hosting:list"),
        reverse("domains:list"),
        reverse("support:ticket_list"),
        reverse("notifications:history"),
        reverse("core:dashboard"),
        reverse("accounts:users"),
    ]

    def measure() -> list[int]:
        client = world.client()
        owner = browser(world.owner, world.account)
        client.get(reverse("core:dashboard"))  # warm the session
        owner.get(reverse("accounts:users"))
        return [_queries(owner if "users" in u else client, u) for u in urls]

    TicketFactory(account=world.account, service=world.site)
    small = measure()
    services = [ServiceFactory(account=world.account) for _ in range(12)]
    domains = [DomainFactory(account=world.account) for _ in range(12)]
    for service in services:
        TicketFactory(account=world.account, service=service)
    membership_update(
        membership=world.membership,
        actor=world.owner,
        permission_codes=DEVELOPER,
        expires_at=None,
        scope={"service": [s.pk for s in services], "domain": [d.pk for d in domains]},
    )
    for _ in range(5):  # more scoped sub-accounts listed in User Management
        membership_grant(
            account=world.account,
            user=UserFactory(),
            permission_codes=["products"],
            scope={"service": [services[0].pk]},
        )
    large = measure()
    assert large == small, dict(zip(urls, zip(small, large, strict=True), strict=True))


def test_an_item_that_left_does_not_come_back_through_a_revived_invitation(
    world: World,
) -> None:
    """Invite someone limited to a service; the invitation lapses; the service moves to
    another account and back. Resending revives the invitation: it must not name it."""
    from datetime import timedelta

    from django.utils import timezone

    from clientarea.accounts.services import invitation_expire_due, invitation_resend

    invitation = invitation_create(
        account=world.account, actor=world.owner, email="late@example.com",
        permission_codes=["manageproducts"], scope={"service": [world.site.pk]},
    )  # fmt: skip
    invitation_expire_due(now=timezone.now() + timedelta(days=8))
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.EXPIRED
    world.site.account = world.elsewhere
    world.site.save()
    world.site.account = world.account
    world.site.save()
    invitation_resend(invitation=invitation, actor=world.owner)
    invitation.refresh_from_db()
    assert world.site.pk not in (invitation.scope or {}).get("service", [])


def test_the_back_office_cannot_edit_a_scope(world: World) -> None:
    """Scopes change only through Edit Permissions (checked, audited, emailed)."""
    from django.test import Client

    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    url = reverse("admin:accounts_membership_change", args=[world.membership.pk])
    page = client.get(url).content.decode()
    assert 'name="scope"' not in page
    client.post(url, {"scope": f'{{"service": [{world.foreign_service.pk}]}}'})
    world.membership.refresh_from_db()
    assert world.membership.scope == {"service": [world.site.pk], "domain": [world.site_domain.pk]}
