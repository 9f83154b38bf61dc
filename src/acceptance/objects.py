"""How to make an object of a given account for each object route of the access table
(the URL kwargs that name it), and fixed kwargs for routes whose arguments are not
objects of an account (signed links)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clientarea.accounts.models import Account
from clientarea.support.tests.factories import (
    AttachmentFactory,
    TicketFactory,
    TicketMessageFactory,
)


def _ticket(account: Account) -> dict[str, Any]:
    return {"pk": TicketFactory(account=account).pk}


def _attachment(account: Account) -> dict[str, Any]:
    message = TicketMessageFactory(ticket=TicketFactory(account=account))
    return {"pk": AttachmentFactory(message=message).pk}


OBJECT_KWARGS: dict[str, Callable[[Account], dict[str, Any]]] = {
    "support:ticket_detail": _ticket,
    "support:ticket_reply": _ticket,
    "support:ticket_close": _ticket,
    "support:attachment_download": _attachment,
}

STATIC_KWARGS: dict[str, dict[str, Any]] = {
    "accounts:password_reset_confirm": {"uidb64": "MQ", "token": "set-password"},
}
