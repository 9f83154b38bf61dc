"""The page shell and forms, as the server renders them (issue 16, defects 12 to 14).

* The Hello menu is scripted from a static file (the CSP forbids inline script) and shows
  Switch Account only to a person with more than one account.
* The navigation marks the current page (aria-current) and has a Menu button for small
  screens, which the script reveals (without it, the navigation stays on show).
* Groups of radios and checkboxes are fieldsets named by a legend.
* List tables carry a label per cell, so that small screens show them as stacked cards.

The browser journeys (test_browser_layout.py) check what a person sees and does with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, User
from clientarea.accounts.services import membership_grant
from clientarea.accounts.tests.factories import AccountFactory, UserFactory
from clientarea.billing.tests.factories import make_invoice

pytestmark = pytest.mark.django_db


def html(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def nav_links(page: str) -> dict[str, str]:
    """Main-menu entry -> its aria-current value ("" when none)."""
    nav = page.split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]
    return {
        label: current or ""
        for current, label in re.findall(
            r'<a href="[^"]*"(?: aria-current="(\w+)")?>([^<]+)</a>', nav
        )
    }


def test_the_menus_are_scripted_from_a_static_file_never_inline(
    login_client: Callable[..., Client], account: Account
) -> None:
    page = html(login_client(account.owner, account), reverse("core:dashboard"))
    assert re.search(r'<script src="/static/js/menus[^"]*\.js" defer></script>', page)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert not re.search(r"\son[a-z]+=", page), "inline event handler"
    # The Menu button is hidden until the script shows it: without the script the
    # navigation is simply on show.
    assert re.search(
        r'<button type="button" class="nav-toggle" aria-expanded="false" '
        r'aria-controls="mainnav" hidden>Menu</button>',
        page,
    )
    assert 'id="mainnav"' in page


def test_switch_account_shows_only_with_more_than_one_account(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    assert "Switch Account" not in html(client, reverse("core:dashboard"))
    AccountFactory(owner=account.owner, company_name="Second Shop")
    assert "Switch Account" in html(client, reverse("core:dashboard"))


def test_a_member_of_two_accounts_sees_switch_account(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    user: User = UserFactory()
    membership_grant(account=account, user=user, permission_codes=["tickets"])
    client = login_client(user, account)
    assert "Switch Account" not in html(client, reverse("core:dashboard"))
    membership_grant(account=other_account, user=user, permission_codes=["tickets"])
    assert "Switch Account" in html(client, reverse("core:dashboard"))


def test_the_navigation_marks_the_current_page(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    invoice = make_invoice(account)
    assert nav_links(html(client, reverse("core:dashboard")))["Dashboard"] == "page"
    billing = nav_links(html(client, reverse("billing:invoice_list")))
    assert billing["Billing"] == "page"
    assert billing["Dashboard"] == ""
    assert [label for label, current in billing.items() if current] == ["Billing"]
    # A page inside a section: its entry is current, not "the page".
    inside = nav_links(html(client, reverse("billing:invoice_detail", kwargs={"pk": invoice.pk})))
    assert inside["Billing"] == "true"
    # A page of no section (Profile): no entry is current.
    assert not any(nav_links(html(client, reverse("accounts:profile"))).values())


def legends(page: str) -> list[str]:
    return re.findall(r'<fieldset class="field field-group[^"]*">\s*<legend>([^<]+)</legend>', page)


def test_groups_of_checkboxes_and_radios_are_fieldsets_with_a_legend(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    invite = html(client, reverse("accounts:user_invite"))
    assert legends(invite)[:3] == ["Permissions", "Choose Permissions", "Services and domains"]
    contact = html(client, reverse("accounts:contact_add"))
    assert legends(contact) == ["Emails they receive"]
    invoice = make_invoice(account)
    pay = html(client, reverse("billing:invoice_pay", kwargs={"pk": invoice.pk}))
    assert legends(pay) == ["Pay with"]
    # No field label left pointing at the first box of a group (the boxes' own labels
    # wrap their input).
    for page in (invite, contact, pay):
        assert not re.search(r'<label for="id_\w+_0">[^<]+</label>', page)


def test_list_tables_label_every_cell_for_small_screens(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    make_invoice(account)
    page = html(client, reverse("billing:invoice_list"))
    assert '<table class="stack">' in page
    for label in ("Invoice", "Issued", "Due", "Total", "Balance", "Status"):
        assert f'<td data-label="{label}"' in page, label
    assert "Pay Now" in page
