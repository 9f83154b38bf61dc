"""Deny by default: every URL of the client area declares who may use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import AccessRule, rule_of


def walk(patterns: Any, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, Any]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = p.namespace or namespace
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield namespace, prefix + str(p.pattern), p.callback


def client_area_patterns() -> list[tuple[str, str, Any]]:
    return [(ns, route, cb) for ns, route, cb in walk(get_resolver().url_patterns) if ns != "admin"]


def test_every_url_pattern_declares_an_access_rule() -> None:
    undeclared = [route for _, route, cb in client_area_patterns() if rule_of(cb) is None]
    assert undeclared == []
    assert all(isinstance(rule_of(cb), AccessRule) for _, _, cb in client_area_patterns())


@pytest.mark.django_db
def test_a_view_without_a_declaration_is_refused(
    client: Client, account: Account, settings: Any
) -> None:
    settings.ROOT_URLCONF = "clientarea.core.tests.undeclared_urls"
    client.force_login(account.owner)
    assert client.get("/undeclared/").status_code == 403


@pytest.mark.django_db
def test_permission_page_redirects_to_login_when_logged_out_and_403s_without_permission(
    client: Client,
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    url = reverse("accounts:account_profile")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    member = member_factory("tickets")
    assert login_client(member.user, account).get(url).status_code == 403


@pytest.mark.django_db
def test_the_hello_menu_offers_exactly_what_the_access_allows(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    entries = {
        "Account Details": "profile",
        "Contacts": "contacts",
        "Email History": "emails",
        "User Management": None,  # owner only
        "Activity Log": None,
    }
    owner_page = login_client(account.owner, account).get(reverse("core:dashboard"))
    for label in entries:
        assert f">{label}</a>" in owner_page.content.decode(), label
    for label, code in entries.items():
        if code is None:
            continue
        member = member_factory(code)
        page = login_client(member.user, account).get(reverse("core:dashboard")).content.decode()
        shown = {other for other in entries if f">{other}</a>" in page}
        assert shown == {label}, (code, shown)
