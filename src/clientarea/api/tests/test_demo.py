from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import User
from clientarea.api.models import ApiToken
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db


def test_demo_owner_has_a_used_token_and_no_secret_is_printed_or_kept() -> None:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    assert "ca_pat_" not in out.getvalue()
    token = ApiToken.objects.get()
    owner = User.objects.get(email="owner@example.com")
    assert token.created_by == owner and token.is_live()
    assert token.last_used_at is not None and token.last_used_ip == "203.0.113.10"
    # The one email about it shows no secret (only the four-character hint).
    for email in OutboxEmail.objects.filter(subject__contains="API token"):
        assert not re.search(r"ca_pat_[0-9A-Za-z]{5,}", email.body_text)
    client = Client()
    client.force_login(owner)
    session = client.session
    session["current_account_id"] = token.account_id
    session.save()
    page = client.get(reverse("api_tokens:list")).content.decode()
    assert "Accounting export" in page and "203.0.113.10" in page
