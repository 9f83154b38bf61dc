"""The dashboard's "Needs your attention": each item only for those whose grant shows it
(permission and resource scope, through the one policy), each provider in a constant
number of queries whatever the number of objects.

Here, not in core's tests: the shell never imports a domain app, and these tests build
invoices, services, domains and tickets.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from acceptance.actors import browser
from clientarea.accounts.models import Account, Invitation, User
from clientarea.accounts.policy import access_for
from clientarea.accounts.services import membership_grant
from clientarea.accounts.tests.factories import (
    AccountFactory,
    InvitationFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.core.registry import ATTENTION_LIMIT, ATTENTION_PROVIDERS
from clientarea.core.views import attention_items_for
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.security.models import AccountSecurity
from clientarea.security.tests.factories import two_factor_on
from clientarea.support.models import Ticket
from clientarea.support.tests.factories import TicketFactory

pytestmark = pytest.mark.django_db


def _overdue_invoice(account: Account) -> Invoice:
    invoice = make_invoice(account, issue_date=timezone.localdate() - timedelta(days=30))
    return invoice


def _world() -> dict[str, Any]:
    account = AccountFactory(company_name="Acme")
    today = timezone.localdate()
    overdue = _overdue_invoice(account)
    unpaid = make_invoice(account)
    paid = make_invoice(account)
    Invoice.objects.filter(pk=paid.pk).update(status=Invoice.Status.PAID, amount_paid=paid.total)
    soon = DomainFactory(account=account, name="soon.example", expiry_date=today + timedelta(10))
    other_soon = DomainFactory(
        account=account, name="other-soon.example", expiry_date=today + timedelta(days=20)
    )
    DomainFactory(account=account, name="later.example", expiry_date=today + timedelta(days=90))
    suspended = ServiceFactory(
        account=account, product_name="Suspended Hosting", status=Service.Status.SUSPENDED
    )
    other_suspended = ServiceFactory(
        account=account, product_name="Other Suspended", status=Service.Status.SUSPENDED
    )
    ServiceFactory(account=account, product_name="Fine Hosting")
    answered = TicketFactory(
        account=account, subject="Your site is back", status=Ticket.Status.ANSWERED
    )
    TicketFactory(account=account, subject="Still open", status=Ticket.Status.OPEN)
    InvitationFactory(account=account, email="new.colleague@example.org")
    return {
        "account": account,
        "overdue": overdue,
        "unpaid": unpaid,
        "soon": soon,
        "other_soon": other_soon,
        "suspended": suspended,
        "other_suspended": other_suspended,
        "answered": answered,
    }


def _page(user: User, account: Account) -> str:
    response = browser(user, account).get(reverse("core:dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_owner_sees_every_kind_of_item_with_its_action() -> None:
    w = _world()
    page = _page(w["account"].owner, w["account"])
    assert "Needs your attention" in page
    assert f"Invoice #{w['overdue'].number} is overdue" in page
    assert f"Invoice #{w['unpaid'].number} is unpaid" in page
    assert reverse("billing:invoice_pay", args=[w["overdue"].pk]) in page
    assert "Pay Now" in page
    assert "soon.example expires in 10 days" in page
    assert "later.example" not in page
    assert reverse("domains:detail", args=[w["soon"].pk]) in page
    assert ">Renew<" in page
    assert "Suspended Hosting is suspended" in page
    assert "Fine Hosting is suspended" not in page
    assert "awaits your reply: Your site is back" in page
    assert "Still open" not in page
    assert "Invitation to new.colleague@example.org not accepted yet" in page
    assert "Two-factor authentication is not on for your login" in page


def test_an_accountant_sees_invoices_only() -> None:
    w = _world()
    accountant = MembershipFactory(account=w["account"], permissions=["invoices"]).user
    page = _page(accountant, w["account"])
    assert f"Invoice #{w['overdue'].number} is overdue" in page
    for absent in ("soon.example", "Suspended Hosting", "Your site is back", "new.colleague"):
        assert absent not in page
    # Everyone without two-factor is told, for themselves.
    assert "Two-factor authentication is not on for your login" in page


def test_a_scoped_developer_sees_only_the_items_in_scope() -> None:
    w = _world()
    dev = UserFactory()
    membership_grant(
        account=w["account"],
        user=dev,
        permission_codes=["products", "domains", "tickets"],
        scope={"service": [w["suspended"].pk], "domain": [w["soon"].pk]},
        actor=w["account"].owner,
    )
    page = _page(dev, w["account"])
    assert "Suspended Hosting is suspended" in page
    assert "Other Suspended" not in page
    assert "soon.example expires" in page
    assert "other-soon.example" not in page
    # Not their ticket, not about an item of theirs.
    assert "Your site is back" not in page
    assert "Invoice #" not in page and "new.colleague" not in page
    mine = TicketFactory(
        account=w["account"], opener=dev, subject="Mine answered", status=Ticket.Status.ANSWERED
    )
    assert f"Ticket #{mine.pk} awaits your reply" in _page(dev, w["account"])


def test_revoked_access_shows_nothing() -> None:
    w = _world()
    membership = MembershipFactory(account=w["account"], permissions=["invoices"])
    membership.status = "revoked"
    membership.save()
    response = browser(membership.user, w["account"]).get(reverse("core:dashboard"))
    assert "Invoice #" not in response.content.decode()


def test_two_factor_items() -> None:
    account: Account = AccountFactory()
    owner = account.owner
    two_factor_on(owner)
    lacking = MembershipFactory(account=account, permissions=["invoices"]).user
    protected = MembershipFactory(account=account, permissions=["invoices"]).user
    two_factor_on(protected)
    page = _page(owner, account)
    assert "not on for your login" not in page
    assert "People with access have no two-factor yet" not in page  # not required
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    page = _page(owner, account)
    assert "People with access have no two-factor yet" in page
    assert lacking.get_full_name() in page
    assert protected.get_full_name() not in page
    # A member with two-factor sees neither item.
    page = _page(protected, account)
    assert "two-factor" not in page.lower().split("needs your attention")[1].split("</section>")[0]


def test_nothing_to_do_says_so() -> None:
    account = AccountFactory()
    two_factor_on(account.owner)
    page = _page(account.owner, account)
    assert "Nothing needs your attention right now." in page


def test_invitations_are_the_owners_and_pending_only() -> None:
    w = _world()
    InvitationFactory(
        account=w["account"], email="gone@example.org", status=Invitation.Status.CANCELLED
    )
    InvitationFactory(
        account=w["account"],
        email="late@example.org",
        expires_at=timezone.now() - timedelta(days=1),
    )
    page = _page(w["account"].owner, w["account"])
    assert "gone@example.org" not in page
    assert "Invitation to late@example.org not accepted yet" in page
    assert "resend it or cancel it" in page
    everything = MembershipFactory(
        account=w["account"], permissions=sorted(["invoices", "products", "domains", "tickets"])
    ).user
    assert "new.colleague" not in _page(everything, w["account"])


def _queries_per_provider(access: Any) -> dict[str, int]:
    counts = {}
    for provider in ATTENTION_PROVIDERS:
        with CaptureQueriesContext(connection) as ctx:
            provider.items(access)
        counts[provider.name] = len(ctx.captured_queries)
    return counts


@pytest.mark.parametrize("scoped", [False, True])
def test_each_provider_costs_the_same_queries_with_more_objects(scoped: bool) -> None:
    w = _world()
    account = w["account"]
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    person = w["account"].owner
    if scoped:
        person = UserFactory()
        membership_grant(
            account=account,
            user=person,
            permission_codes=["products", "domains", "tickets", "invoices"],
            scope={"service": [w["suspended"].pk], "domain": [w["soon"].pk]},
            actor=account.owner,
        )
    access = access_for(person, account.pk)
    assert access is not None
    MembershipFactory(account=account, permissions=["invoices"])
    before = _queries_per_provider(access)
    today = timezone.localdate()
    for n in range(ATTENTION_LIMIT + 3):
        _overdue_invoice(account)
        domain = DomainFactory(account=account, expiry_date=today + timedelta(days=5))
        service = ServiceFactory(account=account, status=Service.Status.SUSPENDED)
        TicketFactory(account=account, opener=person, status=Ticket.Status.ANSWERED)
        InvitationFactory(account=account, email=f"more{n}@example.org")
        MembershipFactory(account=account, permissions=["invoices"])
        if scoped:
            membership = access.membership
            assert membership is not None
            scope = membership.scope or {}
            membership.scope = {
                "service": [*scope.get("service", []), service.pk],
                "domain": [*scope.get("domain", []), domain.pk],
            }
            membership.save(update_fields=["scope"])
    access = access_for(person, account.pk)
    assert access is not None
    after = _queries_per_provider(access)
    assert after == before
    items = attention_items_for(access)
    # Each provider caps its list and links to the rest.
    assert any(item.title == "More unpaid invoices" for item in items)
    assert any(item.title == "More suspended services" for item in items)
    assert any(item.title == "More domains expiring soon" for item in items)


def test_the_dashboard_page_costs_the_same_queries_with_more_objects(
    django_assert_max_num_queries: Any,
) -> None:
    w = _world()
    client = browser(w["account"].owner, w["account"])
    client.get(reverse("core:dashboard"))
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("core:dashboard"))
    baseline = len(ctx.captured_queries)
    for _ in range(ATTENTION_LIMIT + 2):
        _overdue_invoice(w["account"])
        DomainFactory(account=w["account"], expiry_date=timezone.localdate() + timedelta(days=3))
        ServiceFactory(account=w["account"], status=Service.Status.SUSPENDED)
        TicketFactory(account=w["account"], status=Ticket.Status.ANSWERED)
    with django_assert_max_num_queries(baseline):
        client.get(reverse("core:dashboard"))


def test_expired_and_later_domains_and_old_answers_are_not_listed() -> None:
    account = AccountFactory()
    today = timezone.localdate()
    DomainFactory(account=account, name="past.example", expiry_date=today - timedelta(days=2))
    DomainFactory(
        account=account,
        name="gone.example",
        expiry_date=today + timedelta(days=3),
        status=Domain.Status.TRANSFERRED_AWAY,
    )
    old = TicketFactory(account=account, subject="Old answer", status=Ticket.Status.ANSWERED)
    Ticket.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=60))
    page = _page(account.owner, account)
    assert "past.example" not in page and "gone.example" not in page
    assert "Old answer" not in page


def test_the_demo_personas_each_see_their_own_attention_items() -> None:
    """`make run` shows attention items: the demo data has overdue invoices, a domain
    expiring within 30 days, a suspended service, answered tickets and a pending
    invitation, each shown to those whose grant covers it."""
    from django.core.management import call_command

    call_command("load_demo")
    main = Account.objects.get(company_name="Acme Web Studio")

    def page(email: str) -> str:
        return _page(User.objects.get(email=email), main)

    owner = page("owner@example.com")
    for expected in (
        "is overdue",
        "Pay Now",
        "acme-studio.com expires in",
        "is suspended",
        "awaits your reply",
        "Invitation to bookkeeper@example.com",
        "not on for your login",
    ):
        assert expected in owner, expected
    accountant = page("accountant@example.com")
    assert "is overdue" in accountant
    assert "acme-studio.com" not in accountant and "is suspended" not in accountant
    assert "bookkeeper@example.com" not in accountant
    developer = page("developer@example.com")
    assert "Invoice #" not in developer and "bookkeeper" not in developer
    assert "acme-studio.com expires in" in developer and "is suspended" in developer
    partner = page("partner@example.com")  # two-factor on
    assert "not on for your login" not in partner
