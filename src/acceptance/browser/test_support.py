"""Sub-accounts open tickets under their own name and email; staff answer from the back
office and the answer goes to the person who asked."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import close_old_connections

from acceptance.browser.conftest import Shots
from acceptance.browser.helpers import log_in, main_menu
from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import (
    TEST_PASSWORD,
    AccountFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.notifications.models import OutboxEmail
from clientarea.support.models import Ticket
from clientarea.support.tests.factories import DepartmentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sub_account_opens_a_ticket_under_their_own_name_and_gets_the_staff_reply(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    base = live_server.url
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    sam: User = UserFactory.create(email="sam@example.com", first_name="Sam", last_name="Ryan")
    MembershipFactory.create(account=account, user=sam, permissions=["tickets"])
    UserFactory.create(
        email="staff@jiinubi.example",
        first_name="Nora",
        last_name="Quinn",
        is_staff=True,
        is_superuser=True,
    )
    DepartmentFactory.create(name="Technical Support")

    # Sam opens a ticket from Support → Open Ticket.
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, "sam@example.com")
    assert main_menu(page) == ["Dashboard", "Support"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Support").click()
    page.get_by_role("link", name="Open Ticket").click()
    page.get_by_role("heading", name="Open Ticket", exact=True).wait_for()
    assert page.get_by_text("under your name (Sam Ryan, sam@example.com)").is_visible()
    page.get_by_label("Department").select_option(label="Technical Support")
    page.get_by_label("Subject").fill("Mail to info@ bounces")
    page.get_by_label("Message").fill(
        "Since this morning mail to info@acme-studio.example bounces."
    )
    shots(page, "open ticket form")
    page.get_by_role("button", name="Submit Ticket").click()
    page.get_by_role("heading", name="Mail to info@ bounces").wait_for()
    # The thread shows Sam, not the owner.
    facts = page.get_by_role("definition").filter(has_text="sam@example.com")
    assert facts.first.inner_text() == "Sam Ryan <sam@example.com>"
    thread = page.get_by_role("region", name="Messages")
    assert thread.get_by_text("Sam Ryan").is_visible()
    assert thread.get_by_text("Olivia").count() == 0
    shots(page, "ticket opened under own name")
    close_old_connections()
    ticket = Ticket.objects.get(account=account)
    assert (ticket.opener_id, ticket.opener_email) == (sam.pk, "sam@example.com")

    # Staff answer in the back office.
    staff_context = browser.new_context()
    staff = staff_context.new_page()
    staff.goto(f"{base}/admin/support/ticket/{ticket.pk}/change/")
    staff.get_by_label("Email address").fill("staff@jiinubi.example")
    staff.get_by_label("Password").fill(TEST_PASSWORD)
    staff.get_by_role("button", name="Log in").click()
    staff.get_by_label("Staff reply").fill("We fixed the MX record; mail flows again.")
    shots(staff, "staff reply in the back office")
    staff.get_by_role("button", name="Save", exact=True).click()
    staff.get_by_text(f"Your reply to ticket #{ticket.pk} was emailed to the customer.").wait_for()
    staff_context.close()

    # The reply email goes to Sam (who opened it), not to the owner.
    close_old_connections()
    subject = f"[Ticket #{ticket.pk}] Mail to info@ bounces"
    recipients = set(
        OutboxEmail.objects.filter(
            subject__startswith=subject, body_text__contains="MX record"
        ).values_list("to_email", flat=True)
    )
    assert recipients == {"sam@example.com"}

    # Sam sees the answer in the thread, marked as the provider's support.
    page.reload()
    assert thread.get_by_text("We fixed the MX record; mail flows again.").is_visible()
    assert thread.get_by_text("Jiinubi Support").is_visible()
    assert page.get_by_text("Answered").first.is_visible()
    shots(page, "staff reply in the thread")
    context.close()
