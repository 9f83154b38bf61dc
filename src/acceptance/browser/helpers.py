"""Steps of the help article, as a person does them: by the words on the page.

Locators are roles, labels and visible text, never CSS ids, so a renamed button or a
missing label breaks the journey just as it would confuse a customer.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from django.contrib.sessions.backends.db import SessionStore
from django.db import close_old_connections

from clientarea.accounts.reauth import SESSION_KEY
from clientarea.accounts.tests.factories import TEST_PASSWORD
from clientarea.notifications.models import OutboxEmail

# A password the validators accept (15+ characters, not common, not like the email).
NEW_PASSWORD = "Juniper-Harbour-Cobalt-71"
LINK_RE = re.compile(r"https?://\S+/invitation/[A-Za-z0-9_\-]+/")
CONFIRM_PASSWORD_PATH = "/confirm-password/"


def _left(path: str) -> Any:
    """A URL test for `page.wait_for_url`: true once the browser is on another path."""
    return lambda url: urlsplit(url).path != path


def log_in(page: Any, base_url: str, email: str, password: str = TEST_PASSWORD) -> None:
    """Log in (a login without two-factor authentication) and wait for the page after.

    Waits until the browser has left the login page, not for a load state: right after
    the click, `wait_for_load_state()` can answer for the login page itself."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(_left("/login/"))


def open_user_menu(page: Any, first_name: str) -> None:
    """Click **Hello, {first name}!** in the top-right corner."""
    page.get_by_text(f"Hello, {first_name}!").click()


def main_menu(page: Any) -> list[str]:
    """The entries of the main menu, as read on the page."""
    nav = page.get_by_role("navigation", name="Main")
    return [text.strip() for text in nav.get_by_role("link").all_inner_texts()]


def _confirm_heading(page: Any) -> Any:
    return page.get_by_role("heading", name="Confirm your password", exact=True)


def confirm_password(page: Any, password: str) -> None:
    """The page asks "Confirm your password" (waited for: the action must ask): answer it
    as a user would, and wait until the browser has left it for the page it protects."""
    _confirm_heading(page).wait_for()
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(_left(CONFIRM_PASSWORD_PATH))


def confirm_password_if_asked(page: Any, password: str, *, otherwise: Any) -> bool:
    """Sensitive actions ask "Confirm your password" unless the login was just made:
    answer it if asked. True if the page asked.

    `otherwise` is a locator for what only the page reached without the question shows
    (never something of the page the click was made on). Waiting for either tells the two
    apart once the next page is there; `is_visible()` at once could look at a page not yet
    loaded and answer "not asked"."""
    heading = _confirm_heading(page)
    heading.or_(otherwise).first.wait_for()
    if not heading.is_visible():
        return False
    confirm_password(page, password)
    return True


def time_passes(context: Any) -> None:
    """As if the browser's last password entry was an hour ago (the session is real; only
    its confirm-your-password stamp is moved back), so the next sensitive action asks."""
    cookie = next(c for c in context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=cookie["value"])
    session[SESSION_KEY] = int(time.time()) - 3600
    session.save()


def invitation_link(email: str) -> str:
    """The link in the invitation email queued for `email` (the outbox holds it until the
    worker sends it)."""
    close_old_connections()
    row = (
        OutboxEmail.objects.filter(to_email=email, subject__contains="invited you")
        .order_by("-pk")
        .first()
    )
    assert row is not None, f"no invitation email queued for {email}"
    match = LINK_RE.search(row.body_text)
    assert match is not None, row.body_text
    return match.group(0)


def accept_invitation(page: Any, link: str, *, first_name: str, last_name: str) -> None:
    """Open the link from the email and create a password."""
    page.goto(link)
    page.get_by_label("First name").fill(first_name)
    page.get_by_label("Last name").fill(last_name)
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create Password and Join").click()
    page.get_by_text("Welcome! You now have access to").wait_for()
