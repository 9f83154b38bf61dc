from __future__ import annotations

import pytest

from clientarea.accounts.models import Account, User
from clientarea.accounts.services import membership_grant
from clientarea.accounts.tests.factories import AccountFactory, UserFactory
from clientarea.core.demo import DemoContext
from clientarea.notifications.models import OutboxEmail
from clientarea.support import demo
from clientarea.support.models import Attachment, Department, Ticket

pytestmark = pytest.mark.django_db


def test_demo_tickets_show_off_the_feature() -> None:
    owner: User = UserFactory(first_name="Olivia")
    developer: User = UserFactory(first_name="Dana")
    staff: User = UserFactory(is_staff=True)
    other_owner: User = UserFactory()
    main: Account = AccountFactory(owner=owner)
    other: Account = AccountFactory(owner=other_owner)
    membership_grant(account=main, user=developer, permission_codes=["tickets"])
    ctx = DemoContext(
        owner, UserFactory(), developer, UserFactory(), staff, other_owner, main,
        AccountFactory(owner=owner), other,
    )  # fmt: skip
    demo.load(ctx)
    assert set(Department.objects.values_list("name", flat=True)) == {
        "Sales",
        "Technical Support",
        "Billing",
    }
    assert set(Ticket.objects.filter(account=main).values_list("opener", flat=True)) == {
        owner.pk,
        developer.pk,
    }
    assert Ticket.objects.filter(account=other).count() == 1
    answered = Ticket.objects.get(account=main, opener=developer, messages__is_staff=True)
    assert answered.messages.count() == 3
    assert Attachment.objects.filter(message__ticket=answered).exists()
    # the staff answer to the developer's ticket went to the developer, not the owner
    replies = OutboxEmail.objects.filter(subject__contains=f"#{answered.pk}]")
    assert developer.email in set(replies.values_list("to_email", flat=True))
    assert owner.email not in set(replies.values_list("to_email", flat=True))
    statuses = set(Ticket.objects.values_list("status", flat=True))
    assert {"open", "answered", "customer_reply", "closed"} <= statuses
