"""How to make an object of a given account for each object route of the access table
(the URL kwargs that name it), and fixed kwargs for routes whose arguments are not
objects of an account (signed links)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from clientarea.accounts.models import Account, OwnershipTransfer
from clientarea.accounts.tests.factories import (
    ContactFactory,
    InvitationFactory,
    MembershipFactory,
)
from clientarea.api.services import token_create
from clientarea.billing.tests.factories import make_invoice, make_payment_method
from clientarea.domains.models import DomainPrice
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.services import email_queue
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


def _membership(account: Account) -> dict[str, Any]:
    return {"membership_id": MembershipFactory(account=account, permissions=["tickets"]).pk}


def _invitation(account: Account) -> dict[str, Any]:
    return {"invitation_id": InvitationFactory(account=account).pk}


def _contact(account: Account) -> dict[str, Any]:
    return {"contact_id": ContactFactory(account=account).pk}


def _email(account: Account) -> dict[str, Any]:
    row = email_queue(to_email="x@example.com", subject="Hello", body="Hi", account=account)
    return {"email_id": row.pk}


def _invoice(account: Account) -> dict[str, Any]:
    return {"pk": make_invoice(account).pk}


def _payment_method(account: Account) -> dict[str, Any]:
    return {"pk": make_payment_method(account).pk}


def _service(account: Account) -> dict[str, Any]:
    return {"pk": ServiceFactory(account=account).pk}


def _domain(account: Account) -> dict[str, Any]:
    return {"pk": DomainFactory(account=account).pk}


def _renewable_domain(account: Account) -> dict[str, Any]:
    """A domain with a renewal price for its TLD, so Renew shows its form."""
    domain = DomainFactory(account=account)
    DomainPrice.objects.get_or_create(
        tld=domain.name.rsplit(".", 1)[1],
        years=1,
        currency=account.currency,
        defaults={"renew_price": Decimal("12.00")},
    )
    return {"pk": domain.pk}


def _api_token(account: Account) -> dict[str, Any]:
    token, _ = token_create(
        account=account,
        actor=account.owner,
        name="Script",
        permission_codes=["invoices"],
        expires_at=timezone.now() + timedelta(days=30),
    )
    return {"token_id": token.pk}


# The API's people endpoints (their id is `pk`): the same objects as the pages'.
def _api_membership(account: Account) -> dict[str, Any]:
    return {"pk": _membership(account)["membership_id"]}


def _api_invitation(account: Account) -> dict[str, Any]:
    return {"pk": _invitation(account)["invitation_id"]}


def _api_contact(account: Account) -> dict[str, Any]:
    return {"pk": _contact(account)["contact_id"]}


def _api_email(account: Account) -> dict[str, Any]:
    return {"pk": _email(account)["email_id"]}


def _transfer(account: Account) -> dict[str, Any]:
    transfer = OwnershipTransfer.objects.create(
        account=account,
        from_user=account.owner,
        to_email="offered@example.org",
        token_hash=uuid.uuid4().hex,
        expires_at=timezone.now() + timedelta(hours=72),
    )
    return {"transfer_id": transfer.pk}


OBJECT_KWARGS: dict[str, Callable[[Account], dict[str, Any]]] = {
    "accounts:ownership_transfer_cancel": _transfer,
    "accounts:user_edit": _membership,
    "accounts:user_revoke": _membership,
    "accounts:invitation_resend": _invitation,
    "accounts:invitation_cancel": _invitation,
    "accounts:contact_edit": _contact,
    "accounts:contact_remove": _contact,
    "accounts:contact_confirmation_resend": _contact,
    "notifications:history_detail": _email,
    "billing:invoice_detail": _invoice,
    "billing:invoice_pdf": _invoice,
    "billing:invoice_pay": _invoice,
    "billing:invoice_pay_return": _invoice,
    "billing:invoice_pay_cancel": _invoice,
    "billing:payment_method_remove": _payment_method,
    "hosting:detail": _service,
    "hosting:password_reveal": _service,
    "hosting:password_change": _service,
    "hosting:panel_login": _service,
    "hosting:panel_demo": _service,
    "domains:detail": _domain,
    "domains:nameservers": _domain,
    "domains:registrar_lock": _domain,
    "domains:auto_renew": _domain,
    "domains:renew": _renewable_domain,
    "support:ticket_detail": _ticket,
    "support:ticket_reply": _ticket,
    "support:ticket_close": _ticket,
    "support:attachment_download": _attachment,
    "api_tokens:revoke": _api_token,
    # API, support
    "api:ticket_detail": _ticket,
    "api:ticket_reply": _ticket,
    "api:ticket_close": _ticket,
    "api:ticket_attachment": _attachment,
    # API, people
    "api:contact_detail": _api_contact,
    "api:contact_confirmation": _api_contact,
    "api:email_detail": _api_email,
    "api:user_detail": _api_membership,
    "api:invitation_detail": _api_invitation,
    "api:invitation_resend": _api_invitation,
    "api:invoice_detail": _invoice,
    "api:service_detail": _service,
    "api:service_password_reveal": _service,
    "api:service_password_change": _service,
    "api:domain_detail": _domain,
    "api:domain_nameservers": _domain,
    "api:domain_lock": _domain,
    "api:domain_auto_renew": _domain,
    # billing (API)
    "api:invoice_pdf": _invoice,
    "api:invoice_pay": _invoice,
}
# Object routes whose object (made by OBJECT_KWARGS) is the owner's own: anyone else of
# the account gets the 404 of an object they cannot see (an API token is revoked by its
# creator or the owner).
OWNERS_OBJECT_ROUTES = {"api_tokens:revoke"}

STATIC_KWARGS: dict[str, dict[str, Any]] = {
    "accounts:password_reset_confirm": {"uidb64": "MQ", "token": "set-password"},
    "accounts:invitation_accept": {"token": "no-such-invitation-token"},
    "security:email_change_confirm": {"token": "no-such-token"},
    "accounts:contact_confirm_link": {"token": "no-such-contact-token"},
    "accounts:ownership_transfer_link": {"token": "no-such-transfer-token"},
    # Sessions are the user's own, not the account's: any id that is not the actor's
    # own session answers 404 (tested in the security app); here only the policy counts.
    "security:session_end": {"session_id": 999999},
}

# Routes whose placeholder arguments name nothing, and the answer the view gives to that
# (unknown session, unknown or malformed link): reaching it means the policy let the
# request through. Each view's own tests cover real ids and tokens.
PLACEHOLDER_ROUTES: dict[str, set[str]] = {
    "security:session_end": {"not_found"},
    # Opened without a link first: the session holds no token.
    "accounts:invitation_page": {"not_found"},
    "security:email_change_confirm_page": {"status 400"},
    # No link was opened in this session: nothing to confirm.
    "accounts:contact_confirm": {"not_found"},
    # No transfer link was opened in this session: no offer to show.
    "accounts:ownership_transfer_page": {"not_found"},
    # An unsigned delivery: refused before anything is done (signatures: billing's tests).
    "billing:stripe_webhook": {"status 400"},
    # No test card named: refused as bad input once the policy let the request through.
    "billing:sandbox_tokenize": {"status 400"},
}


# --- resource scope ----------------------------------------------------------------------
# Object routes a resource scope limits, with the kind of item ("service", "domain") that
# the in-scope object of each is about. The objects OBJECT_KWARGS makes for an account are
# about no item in anyone's scope: a scoped actor gets a 404 for them, except where the
# object is account-wide (a general email).
SCOPED_ROUTES: dict[str, str] = {
    "hosting:detail": "service",
    "hosting:password_reveal": "service",
    "hosting:password_change": "service",
    "hosting:panel_login": "service",
    "hosting:panel_demo": "service",
    "domains:detail": "domain",
    "domains:nameservers": "domain",
    "domains:registrar_lock": "domain",
    "domains:auto_renew": "domain",
    "domains:renew": "domain",
    "support:ticket_detail": "service",
    "support:ticket_reply": "service",
    "support:ticket_close": "service",
    "support:attachment_download": "service",
    "notifications:history_detail": "service",
    # API, support: a token answers these as the pages do (a session: 401, never reached)
    "api:ticket_detail": "service",
    "api:ticket_reply": "service",
    "api:ticket_close": "service",
    "api:ticket_attachment": "service",
}
ACCOUNT_WIDE_OBJECTS = {"notifications:history_detail"}  # _email makes a general email
# The in-scope object of these routes is read only with a permission besides the route's:
# a product email needs View Products & Services too (what covers its kind).
IN_SCOPE_ALSO_NEEDS = {"notifications:history_detail": "products"}
# Routes that need a second permission besides the route's, whatever the object: Renew
# is paying for the domain, so it needs View & Pay Invoices too (a 404, like no access).
ALSO_NEEDS = {"domains:renew": "invoices"}


def _in_scope_ticket(account: Account, service: Any, domain: Any) -> dict[str, Any]:
    return {"pk": TicketFactory(account=account, service=service).pk}


def _in_scope_attachment(account: Account, service: Any, domain: Any) -> dict[str, Any]:
    message = TicketMessageFactory(ticket=TicketFactory(account=account, service=service))
    return {"pk": AttachmentFactory(message=message).pk}


def _in_scope_email(account: Account, service: Any, domain: Any) -> dict[str, Any]:
    row = email_queue(
        to_email="x@example.com",
        subject="Your hosting",
        body="Hi",
        account=account,
        kind="product",
        about=("service", service.pk),
    )
    return {"email_id": row.pk}


# The object of a scoped route about the given service or domain (in someone's scope).
IN_SCOPE_KWARGS: dict[str, Callable[[Account, Any, Any], dict[str, Any]]] = {
    "hosting:detail": lambda a, s, d: {"pk": s.pk},
    "hosting:password_reveal": lambda a, s, d: {"pk": s.pk},
    "hosting:password_change": lambda a, s, d: {"pk": s.pk},
    "hosting:panel_login": lambda a, s, d: {"pk": s.pk},
    "hosting:panel_demo": lambda a, s, d: {"pk": s.pk},
    "domains:detail": lambda a, s, d: {"pk": d.pk},
    "domains:nameservers": lambda a, s, d: {"pk": d.pk},
    "domains:registrar_lock": lambda a, s, d: {"pk": d.pk},
    "domains:auto_renew": lambda a, s, d: {"pk": d.pk},
    "domains:renew": lambda a, s, d: {"pk": d.pk},
    "support:ticket_detail": _in_scope_ticket,
    "support:ticket_reply": _in_scope_ticket,
    "support:ticket_close": _in_scope_ticket,
    "support:attachment_download": _in_scope_attachment,
    "notifications:history_detail": _in_scope_email,
    # API, support
    "api:ticket_detail": _in_scope_ticket,
    "api:ticket_reply": _in_scope_ticket,
    "api:ticket_close": _in_scope_ticket,
    "api:ticket_attachment": _in_scope_attachment,
}
assert set(IN_SCOPE_KWARGS) == set(SCOPED_ROUTES)
