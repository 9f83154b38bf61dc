"""The status filters of Products & Services and Domains: the template writes the select
itself (Django's widget renders a template per option, a large part of those pages'
time), and writes exactly what the widget would, whatever the query string."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.domains.forms import StatusFilterForm as DomainFilter
from clientarea.hosting.forms import StatusFilterForm as ServiceFilter


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url_name", "form"), [("hosting:list", ServiceFilter), ("domains:list", DomainFilter)]
)
@pytest.mark.parametrize("query", ["", "status=", "status=active", "status=bogus", "page=2"])
def test_the_filter_is_the_widgets_own_html(
    account: Account,
    login_client: Callable[..., Client],
    url_name: str,
    form: Any,
    query: str,
) -> None:
    client = login_client(account.owner, account)
    response = client.get(reverse(url_name) + ("?" + query if query else ""))
    assert response.status_code == 200
    widget = str(form(QueryDict(query))["status"])
    assert widget in response.content.decode()
