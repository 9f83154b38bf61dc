"""Activity Log: filters by date range, action and person; the CSV export (owner only,
the filtered list, streamed, formula cells neutralised, times in the owner's zone)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Membership, User
from clientarea.audit.filters import csv_safe
from clientarea.audit.models import AuditEvent
from clientarea.audit.services import audit_record

pytestmark = pytest.mark.django_db


def _event(account: Account, action: str, when: datetime, actor: User | None = None, **kw) -> None:
    event = audit_record(action=action, actor=actor, account=account, **kw)
    # Append-only: move the time with a raw UPDATE, as a test alone may.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET created_at = %s WHERE id = %s",
            [when, event.pk],
        )


@pytest.fixture
def log(account: Account, member_factory: Callable[..., Membership]) -> dict[str, object]:
    member = member_factory("contacts")
    _event(account, "contact.added", datetime(2026, 3, 1, 12, tzinfo=UTC), member.user,
           target_label="march@example.com")  # fmt: skip
    _event(account, "invitation.sent", datetime(2026, 3, 15, 9, tzinfo=UTC), account.owner,
           target_label="mid-march@example.com")  # fmt: skip
    _event(account, "contact.removed", datetime(2026, 4, 2, 8, tzinfo=UTC), member.user,
           target_label="april@example.com")  # fmt: skip
    _event(account, "ticket.staff_replied", datetime(2026, 4, 3, 8, tzinfo=UTC), None,
           target_label="staff-answer", is_staff_action=True)  # fmt: skip
    return {"member": member}


def _page(client: Client, **params: str) -> str:
    response = client.get(reverse("audit:activity"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_filters_by_date_range_action_and_person(
    login_client: Callable[..., Client], account: Account, log: dict[str, object]
) -> None:
    client = login_client(account.owner, account)
    everything = _page(client)
    for label in ("march@", "mid-march@", "april@", "staff-answer"):
        assert label in everything
    march = _page(client, date_from="2026-03-01", date_to="2026-03-31")
    assert "march@example.com" in march and "mid-march@" in march and "april@" not in march
    # To includes its whole day.
    assert "mid-march@" in _page(client, date_from="2026-03-15", date_to="2026-03-15")
    only_invites = _page(client, action="invitation.sent")
    assert "mid-march@" in only_invites and "april@" not in only_invites
    member = log["member"]
    assert isinstance(member, Membership)
    theirs = _page(client, user=str(member.user.pk))
    assert "march@example.com" in theirs and "mid-march@" not in theirs
    staff = _page(client, user="staff")
    assert "staff-answer" in staff and "april@" not in staff
    combined = _page(
        client, user=str(member.user.pk), action="contact.removed", date_from="2026-04-01"
    )
    assert "april@" in combined and "march@example.com" not in combined
    # The action list names the actions in words.
    assert "Invitation sent" in everything and 'value="invitation.sent"' in everything


def test_dates_are_days_in_the_owners_time_zone(
    login_client: Callable[..., Client], account: Account
) -> None:
    owner = account.owner
    owner.time_zone = "Pacific/Auckland"  # UTC+13 in March
    owner.save(update_fields=["time_zone"])
    # 2 March 00:30 in Auckland is 1 March 11:30 UTC.
    _event(account, "contact.added", datetime(2026, 3, 1, 11, 30, tzinfo=UTC), owner,
           target_label="auckland-morning")  # fmt: skip
    client = login_client(owner, account)
    assert "auckland-morning" in _page(client, date_from="2026-03-02", date_to="2026-03-02")
    assert "auckland-morning" not in _page(client, date_to="2026-03-01")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"date_from": "yesterday"}, "Enter the From date as YYYY-MM-DD."),
        ({"date_to": "2026-02-30"}, "Enter the To date as YYYY-MM-DD."),
        ({"date_from": "9999-12-31"}, "Choose a date between 2000 and 2100."),
        ({"date_to": "0001-01-01"}, "Choose a date between 2000 and 2100."),
        ({"date_from": "2026-04-01", "date_to": "2026-03-01"}, "must not be before"),
        ({"action": "<script>"}, "Choose an action from the list."),
        ({"action": "x" * 5000}, "Choose an action from the list."),
        ({"user": "99999999999999999999999"}, "Choose a person from the list."),
        ({"user": "²"}, "Choose a person from the list."),
        ({"date_from": "\x00"}, "Enter the From date"),
    ],
)
def test_bad_filters_get_a_clear_message_never_a_500(
    login_client: Callable[..., Client],
    account: Account,
    log: dict[str, object],
    params: dict[str, str],
    message: str,
) -> None:
    client = login_client(account.owner, account)
    page = _page(client, **params)
    assert message in page
    assert "<script>" not in page
    # A bad field filters nothing: the rest of the log still shows.
    assert "april@" in page or "date_from" in params or "date_to" in params
    # The export of bad filters sends the owner to the page that explains them.
    response = client.get(reverse("audit:activity_export"), params)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("audit:activity"))


def test_another_accounts_person_filters_nothing_in(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    audit_record(action="invitation.sent", account=other_account, actor=other_account.owner,
                 target_label="globex@x.com")  # fmt: skip
    page = _page(login_client(account.owner, account), user=str(other_account.owner.pk))
    assert "Choose a person from the list." in page and "globex@x.com" not in page


def _csv(client: Client, **params: str) -> list[list[str]]:
    response = client.get(reverse("audit:activity_export"), params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_the_export_is_the_filtered_list_in_the_owners_zone(
    login_client: Callable[..., Client], account: Account, log: dict[str, object]
) -> None:
    owner = account.owner
    owner.time_zone = "Europe/Dublin"
    owner.save(update_fields=["time_zone"])
    client = login_client(owner, account)
    rows = _csv(client)
    header, body = rows[0], rows[1:]
    assert header[0] == "When (Europe/Dublin)"
    assert header[1:] == ["Who", "Staff", "What", "Action", "About", "Changes", "IP address"]
    assert len(body) == 4
    newest = body[0]
    assert newest[0] == "2026-04-03 09:00:00 IST"  # 08:00 UTC, Irish summer time named
    assert newest[2] == "yes" and newest[5] == "staff-answer"
    march = _csv(client, date_from="2026-03-01", date_to="2026-03-31")
    assert [r[5] for r in march[1:]] == ["mid-march@example.com", "march@example.com"]
    assert march[2][0] == "2026-03-01 12:00:00 GMT"
    assert [r[5] for r in _csv(client, action="contact.removed")[1:]] == ["april@example.com"]


def test_the_export_neutralises_formulas(
    login_client: Callable[..., Client], account: Account
) -> None:
    for i, bad in enumerate(['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tx"]):
        audit_record(action="contact.added", account=account, actor=account.owner,
                     target_label=bad, changes={"name": [bad, f"ok{i}"]})  # fmt: skip
    rows = _csv(login_client(account.owner, account))
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t")), cell
    abouts = {row[5] for row in rows[1:]}
    assert '\'=HYPERLINK("http://x")' in abouts and "'-2" in abouts
    assert csv_safe("plain") == "plain" and csv_safe("") == "" and csv_safe(None) == ""


def test_the_export_is_owner_only(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    partner = member_factory(*permissions.ALL_CODES)
    response = login_client(partner.user, account).get(reverse("audit:activity_export"))
    assert response.status_code == 403


def test_the_export_streams_in_constant_queries(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            b"".join(client.get(reverse("audit:activity_export")).streaming_content)
        return len(ctx)

    for i in range(3):
        audit_record(action="contact.added", actor=account.owner, account=account,
                     target_label=f"a{i}")  # fmt: skip
    few = count()
    for i in range(120):
        audit_record(action="contact.added", actor=account.owner, account=account,
                     target_label=f"b{i}")  # fmt: skip
    assert count() == few


def test_filtered_page_queries_do_not_grow(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    params = {"date_from": "2000-01-01", "action": "contact.added", "user": str(account.owner.pk)}
    audit_record(action="contact.added", actor=account.owner, account=account)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("audit:activity"), params).status_code == 200
        return len(ctx)

    few = count()
    for i in range(60):
        audit_record(action="contact.added", actor=account.owner, account=account,
                     target_label=f"c{i}")  # fmt: skip
    assert count() == few
