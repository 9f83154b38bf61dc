"""Links into another account (issue 16, defect 4).

An emailed or bookmarked link to an object of another account the person can use opens
it there, switching account the way Switch Account does. From the attacker's side: an
object of an account they cannot use, access that ended, an object outside their scope,
a page their grant does not allow, a POST, or a page that hides the object from them
(a scoped person and someone else's ticket) stays the same 404 or 403 as before, and the
session's account does not change. After login, the page asked for opens (same host
only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from acceptance.objects import OBJECT_KWARGS
from clientarea.access_table import ROUTES
from clientarea.accounts.models import Account, User
from clientarea.accounts.reauth import SESSION_KEY as REAUTH_KEY
from clientarea.accounts.services import membership_grant, membership_revoke
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.support.tests.factories import TicketMessageFactory

pytestmark = pytest.mark.django_db

SESSION_KEY = "current_account_id"


@pytest.fixture
def sam(account: Account) -> User:
    """Sam owns Globex and is the accountant of Acme (account): two accounts."""
    user: User = UserFactory(email="sam@example.com", first_name="Sam")
    membership_grant(account=account, user=user, permission_codes=["invoices"])
    return user


@pytest.fixture
def globex(sam: User) -> Account:
    return AccountFactory(owner=sam, company_name="Globex Ltd")


@pytest.fixture
def invoice(account: Account) -> Invoice:
    return make_invoice(account)


def switches(user: User) -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action="account.switched", actor=user).values(
            "account_id", "target_label", "changes"
        )
    )


def invoice_url(invoice: Invoice) -> str:
    return reverse("billing:invoice_detail", kwargs={"pk": invoice.pk})


def test_a_link_to_an_invoice_of_another_account_opens_it_there(
    login_client: Callable[..., Client],
    account: Account,
    sam: User,
    globex: Account,
    invoice: Invoice,
) -> None:
    client = login_client(sam, globex)
    response = client.get(invoice_url(invoice))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Invoice #{invoice.number}" in page
    assert "You are now working in Acme Web Studio." in page
    assert client.session[SESSION_KEY] == account.pk
    # Recorded as a switch, with the page that caused it; the page asked in Globex (and
    # asked again in Acme before switching) left no other trace.
    assert switches(sam) == [
        {"account_id": account.pk, "target_label": invoice_url(invoice), "changes": {"via": "link"}}
    ]
    assert not AuditEvent.objects.filter(action="access.refused").exists()


def test_switch_account_is_recorded_the_same_way(
    login_client: Callable[..., Client], account: Account, sam: User, globex: Account
) -> None:
    client = login_client(sam, globex)
    client.post(reverse("accounts:select_account"), {"account": account.pk})
    assert client.session[SESSION_KEY] == account.pk
    assert switches(sam) == [
        {"account_id": account.pk, "target_label": "", "changes": {"via": "switcher"}}
    ]


def test_a_page_the_current_account_does_not_allow_opens_in_the_account_that_does(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    """Working in Globex with tickets only, a link to an Acme invoice (invoices there)."""
    user: User = UserFactory()
    membership_grant(account=other_account, user=user, permission_codes=["tickets"])
    membership_grant(account=account, user=user, permission_codes=["invoices"])
    invoice = make_invoice(account)
    client = login_client(user, other_account)
    assert client.get(invoice_url(invoice)).status_code == 200
    assert client.session[SESSION_KEY] == account.pk


def test_with_no_account_chosen_yet_the_link_picks_the_right_one(
    client: Client, account: Account, sam: User, globex: Account, invoice: Invoice
) -> None:
    client.force_login(sam)
    response = client.get(invoice_url(invoice))
    assert response.status_code == 200
    assert client.session[SESSION_KEY] == account.pk


def test_another_account_s_object_is_the_same_404_without_a_switch(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    globex: Account,
    sam: User,
) -> None:
    """Sam cannot use other_account: its invoice is a 404 like an id that exists nowhere."""
    theirs = make_invoice(other_account)
    client = login_client(sam, globex)
    response = client.get(invoice_url(theirs))
    nowhere = client.get(reverse("billing:invoice_detail", kwargs={"pk": theirs.pk + 1000}))
    assert response.status_code == nowhere.status_code == 404
    assert response.templates[0].name == nowhere.templates[0].name
    assert client.session[SESSION_KEY] == globex.pk
    assert switches(sam) == []


def test_access_that_ended_is_a_404_without_a_switch(
    login_client: Callable[..., Client],
    account: Account,
    sam: User,
    globex: Account,
    invoice: Invoice,
) -> None:
    membership_revoke(membership=sam.memberships.get(account=account), actor=account.owner)
    client = login_client(sam, globex)
    assert client.get(invoice_url(invoice)).status_code == 404
    assert client.session[SESSION_KEY] == globex.pk
    assert switches(sam) == []


def test_an_object_outside_the_scope_is_a_404_without_a_switch(
    login_client: Callable[..., Client], account: Account, sam: User, globex: Account
) -> None:
    mine = ServiceFactory(account=account)
    other = ServiceFactory(account=account)
    membership_grant(
        account=account, user=sam, permission_codes=["products"], scope={"service": [mine.pk]}
    )
    client = login_client(sam, globex)
    assert client.get(reverse("hosting:detail", kwargs={"pk": other.pk})).status_code == 404
    assert client.session[SESSION_KEY] == globex.pk
    assert client.get(reverse("hosting:detail", kwargs={"pk": mine.pk})).status_code == 200
    assert client.session[SESSION_KEY] == account.pk


def test_a_ticket_the_page_hides_from_a_scoped_person_is_a_404_without_a_switch(
    login_client: Callable[..., Client], account: Account, sam: User, globex: Account
) -> None:
    """The page's own rule decides (a scoped person sees the tickets they opened and those
    about their items): the owner's ticket about nothing stays a 404."""
    mine = ServiceFactory(account=account)
    membership_grant(
        account=account, user=sam, permission_codes=["tickets"], scope={"service": [mine.pk]}
    )
    message = TicketMessageFactory(ticket__account=account, ticket__opener=account.owner)
    client = login_client(sam, globex)
    url = reverse("support:ticket_detail", kwargs={"pk": message.ticket.pk})
    assert client.get(url).status_code == 404
    assert client.session[SESSION_KEY] == globex.pk
    assert switches(sam) == []


def test_a_permission_missing_there_is_a_404_without_a_switch(
    login_client: Callable[..., Client], account: Account, sam: User, globex: Account
) -> None:
    """Sam is Acme's accountant, without Open & View Support Tickets."""
    message = TicketMessageFactory(ticket__account=account)
    client = login_client(sam, globex)
    url = reverse("support:ticket_detail", kwargs={"pk": message.ticket.pk})
    assert client.get(url).status_code == 404
    assert client.session[SESSION_KEY] == globex.pk
    # Working in Acme itself, the page is refused as it always was.
    client = login_client(sam, account)
    assert client.get(url).status_code == 403
    assert client.session[SESSION_KEY] == account.pk
    assert switches(sam) == []


def test_a_post_never_switches(
    login_client: Callable[..., Client], account: Account, sam: User, globex: Account
) -> None:
    membership_grant(account=account, user=sam, permission_codes=["tickets"])
    message = TicketMessageFactory(ticket__account=account)
    client = login_client(sam, globex)
    url = reverse("support:ticket_reply", kwargs={"pk": message.ticket.pk})
    assert client.post(url, {"body": "Hello"}).status_code == 404
    assert client.session[SESSION_KEY] == globex.pk
    assert message.ticket.messages.count() == 1


def test_after_login_the_page_asked_for_opens(
    client: Client, account: Account, sam: User, globex: Account, invoice: Invoice
) -> None:
    url = invoice_url(invoice)
    response = client.get(url)
    assert response.status_code == 302
    login_url = response["Location"]
    assert login_url.startswith(reverse("accounts:login"))
    response = client.post(login_url, {"username": sam.email, "password": TEST_PASSWORD})
    assert response["Location"] == url
    assert client.get(url).status_code == 200
    assert client.session[SESSION_KEY] == account.pk


@pytest.mark.parametrize(
    "forged", ["https://evil.example/billing/", "//evil.example/", "http://testserver.evil/"]
)
def test_a_next_to_another_host_is_ignored(client: Client, sam: User, forged: str) -> None:
    response = client.post(
        reverse("accounts:login") + "?next=" + forged,
        {"username": sam.email, "password": TEST_PASSWORD},
    )
    assert response["Location"] == reverse("core:dashboard")


def test_switch_account_keeps_the_page_asked_for(
    client: Client, account: Account, sam: User, globex: Account
) -> None:
    """A page that is not an object (the invoice list) asks which account first, then
    opens; a forged next is ignored."""
    client.force_login(sam)
    response = client.get(reverse("billing:invoice_list"))
    assert response.status_code == 302
    select = response["Location"]
    assert select.startswith(reverse("accounts:select_account") + "?next=")
    assert 'name="next" value="/billing/"' in client.get(select).content.decode()
    response = client.post(select, {"account": account.pk, "next": reverse("billing:invoice_list")})
    assert response["Location"] == reverse("billing:invoice_list")
    response = client.post(
        reverse("accounts:select_account"), {"account": globex.pk, "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("core:dashboard")


# --- Every object page, one mechanism --------------------------------------------------

GET_OBJECT_ROUTES = sorted(
    r.name
    for r in ROUTES
    # Pages only: the API has no session to switch (clientarea.api).
    if r.object_param and "GET" in r.methods and r.rule != "public" and not r.is_api
)


@pytest.mark.parametrize("route", GET_OBJECT_ROUTES)
def test_every_object_page_follows_a_link_into_another_account(
    login_client: Callable[..., Client], account: Account, route: str, settings: Any
) -> None:
    """The owner of two accounts, working in one, opens a link to each object page of
    the other: the page opens there, whichever app it belongs to; a POST to it from the
    first account is still the 404 of another account's object."""
    settings.DEMO_MODE = True  # (the demo panel page exists only then)
    globex = AccountFactory(owner=account.owner, company_name="Globex Ltd")
    url = reverse(route, kwargs=OBJECT_KWARGS[route](account))
    client = login_client(account.owner, globex)
    session = client.session
    session[REAUTH_KEY] = int(time.time())  # a recent login: no confirm-your-password step
    session.save()
    response = client.get(url)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert not response["Location"].startswith(reverse("accounts:select_account"))
    assert client.session[SESSION_KEY] == account.pk
