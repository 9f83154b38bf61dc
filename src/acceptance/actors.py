"""Logged-in clients and a snapshot of everything access depends on, for the
privilege-escalation and stateful access tests.

Clients enforce CSRF and carry a valid token, so a 403 always means the policy refused;
they count as recently re-authenticated, so a refusal is never the "confirm your
password" page either.
"""

from __future__ import annotations

import time
from typing import Any

from django.test import Client

from clientarea.accounts.middleware import SESSION_ACCOUNT_KEY
from clientarea.accounts.models import Account, Contact, Invitation, Membership, User
from clientarea.accounts.reauth import SESSION_KEY as REAUTH_KEY
from clientarea.security.models import AccountSecurity

CSRF = "x" * 32  # an unmasked CSRF secret: valid as both cookie and form token


def browser(user: User | None = None, account: Account | None = None) -> Client:
    """A browser with CSRF enforcement on, logged in as `user` working in `account`."""
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = CSRF
    if user is not None:
        client.force_login(user)
        session = client.session
        session[REAUTH_KEY] = int(time.time())
        if account is not None:
            session[SESSION_ACCOUNT_KEY] = account.pk
        session.save()
    return client


def work_in(client: Client, account: Account | None) -> None:
    """Point the client's session at `account` (or at none), as a remembered choice."""
    session = client.session
    if account is None:
        session.pop(SESSION_ACCOUNT_KEY, None)
    else:
        session[SESSION_ACCOUNT_KEY] = account.pk
    session[REAUTH_KEY] = int(time.time())
    session.save()


def post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    """POST a form with a valid CSRF token. Logging in rotates the CSRF cookie (as it
    should); a browser would read the new token from the next page, so the known one is
    put back first."""
    client.cookies["csrftoken"] = CSRF
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": CSRF})


def snapshot() -> dict[str, Any]:
    """Everything an escalation could change: owners, account details and balance,
    memberships, invitations, contacts, per-account security settings and user flags."""
    return {
        "accounts": {
            a["pk"]: a
            for a in Account.objects.values(
                "pk",
                "owner_id",
                "company_name",
                "address_line1",
                "address_line2",
                "city",
                "postcode",
                "country",
                "currency",
                "credit_balance",
            )
        },
        "memberships": {
            m["pk"]: m
            for m in Membership.objects.values(
                "pk", "account_id", "user_id", "permissions", "status", "expires_at"
            )
        },
        "invitations": {
            i["pk"]: i
            for i in Invitation.objects.values(
                "pk",
                "account_id",
                "email",
                "permissions",
                "access_expires_at",
                "status",
                "token_hash",
                "expires_at",
                "accepted_by_id",
            )
        },
        "contacts": {
            c["pk"]: c
            for c in Contact.objects.values("pk", "account_id", "name", "email", "email_kinds")
        },
        "security": {
            s["account_id"]: s["require_two_factor"]
            for s in AccountSecurity.objects.values("account_id", "require_two_factor")
        },
        "users": {
            u["pk"]: u
            for u in User.objects.values("pk", "email", "is_staff", "is_superuser", "is_active")
        },
    }


def owners_have_no_membership() -> bool:
    """The owner of an account never holds a membership of it."""
    return not any(
        Membership.objects.filter(account=a, user_id=a.owner_id).exists()
        for a in Account.objects.all()
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two snapshots, table by table: rows added, rows removed and,
    for rows in both, each changed field as (before, after). Unchanged tables are left
    out, so "nothing changed" is ``{}``."""
    out: dict[str, Any] = {}
    for table in before:
        old, new = before[table], after[table]
        added = sorted(set(new) - set(old))
        removed = sorted(set(old) - set(new))
        changed: dict[Any, dict[str, tuple[Any, Any]]] = {}
        for pk in set(old) & set(new):
            if old[pk] != new[pk]:
                if isinstance(old[pk], dict):
                    changed[pk] = {
                        f: (old[pk][f], new[pk][f]) for f in old[pk] if old[pk][f] != new[pk][f]
                    }
                else:
                    changed[pk] = {"value": (old[pk], new[pk])}
        entry: dict[str, Any] = {}
        if added:
            entry["added"] = added
        if removed:
            entry["removed"] = removed
        if changed:
            entry["changed"] = changed
        if entry:
            out[table] = entry
    return out


def outcome(response: Any) -> str:
    """What a response means for access: ok, forbidden (403), not_found (404), or where a
    redirect sends the user (login, select_account, access_removed)."""
    from django.urls import reverse

    status = response.status_code
    if status == 404:
        return "not_found"
    if status == 403:
        return "forbidden"
    if status in (301, 302, 303):
        location = response["Location"]
        for name in ("login", "select_account", "access_removed", "confirm_password"):
            if location.startswith(reverse(f"accounts:{name}")):
                return name
        return "ok"
    if 200 <= status < 300:
        return "ok"
    return f"status {status}"
