"""Renew a domain: a renewal invoice at staff's price, paid through the usual flow; once
paid (by any means), the registry renews it exactly once, never inside a transaction.

Here, not in either app's tests: it crosses domains and billing, which import neither
the other (they meet through core.billable)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.accounts.policy import OutOfReach
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import services as billing
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import card
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.core.registry import PERIODIC_JOBS
from clientarea.domains import renewals
from clientarea.domains.models import Domain, DomainPrice, DomainRenewal
from clientarea.domains.services import DomainActionError
from clientarea.domains.tests.conftest import RecordingRegistrar
from clientarea.domains.tests.factories import DomainFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def registrar(settings: Any) -> Iterator[type[RecordingRegistrar]]:
    """The domains tests' recording registry (it fails any call inside a transaction)."""
    from django.core.cache import cache

    cache.clear()
    RecordingRegistrar.reset()
    settings.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.tests.conftest.RecordingRegistrar"
    yield RecordingRegistrar
    RecordingRegistrar.reset()


D = Decimal
EXPIRY = datetime.date(2027, 3, 1)
TIMEOUT_CARD = "4000000000003006"  # the sandbox charges it, and the answer is lost


@pytest.fixture
def prices(db: Any) -> None:
    DomainPrice.objects.create(tld="example", years=1, renew_price=D("12.50"), currency="EUR")
    DomainPrice.objects.create(tld="example", years=2, renew_price=D("24.00"), currency="EUR")
    DomainPrice.objects.create(tld="example", years=1, renew_price=D("11.00"), currency="USD")


@pytest.fixture
def domain(account: Account, prices: None) -> Domain:
    return DomainFactory(account=account, name="acme.example", expiry_date=EXPIRY)


def order(domain: Domain, years: int = 1, actor: Any = None) -> DomainRenewal:
    return renewals.domain_renewal_order(
        domain=domain, actor=actor or domain.account.owner, years=years
    )


def pay(
    invoice_id: int | None, account: Account, source: Any, key: str = "renew-key-0123456789"
) -> Any:
    assert invoice_id is not None
    return billing.invoice_pay(
        invoice_id=invoice_id,
        access=access_of(account.owner, account),
        source=source,
        idempotency_key=key,
    )


def renews(registrar: Any) -> list[Any]:
    return [c for c in registrar.calls if c[1] == "renew"]


def after_grace() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS + 1)


def test_the_order_issues_an_invoice_at_the_price_list_price(domain: Domain) -> None:
    placed = order(domain, years=2)
    assert placed.invoice_id is not None
    invoice = Invoice.objects.get(pk=placed.invoice_id)
    assert invoice.account == domain.account and invoice.status == "unpaid"
    assert invoice.total == D("24.00")  # the EUR price for two years, not the USD one
    line = invoice.lines.get()
    assert line.item == f"domains.renewal:{placed.pk}"
    assert "acme.example, 2 years" in line.description
    assert placed.state == DomainRenewal.State.AWAITING_PAYMENT
    # The same order again (a replayed form) reuses it: one invoice.
    assert order(domain, years=2).pk == placed.pk
    assert Invoice.objects.count() == 1


def test_only_priced_periods_are_offered_and_a_forged_one_is_refused(domain: Domain) -> None:
    assert [p.years for p in renewals.renewal_periods(domain, "EUR")] == [1, 2]
    for years in (3, 0, -1, 99):
        with pytest.raises(DomainActionError):
            order(domain, years=years)
    assert not Invoice.objects.exists() and not DomainRenewal.objects.exists()


def test_no_price_in_the_currency_offers_nothing(account: Account, prices: None) -> None:
    other = DomainFactory(account=account, name="acme.org")
    assert renewals.renewal_periods(other, "EUR") == []
    with pytest.raises(DomainActionError):
        order(other)


def test_the_longest_priced_suffix_wins(account: Account) -> None:
    DomainPrice.objects.create(tld="uk", years=1, renew_price=D("9.00"), currency="EUR")
    DomainPrice.objects.create(tld="co.uk", years=1, renew_price=D("7.00"), currency="EUR")
    dom = DomainFactory(account=account, name="shop.co.uk")
    assert [p.renew_price for p in renewals.renewal_prices(dom, "EUR")] == [D("7.00")]


def test_the_service_asks_the_policy(
    domain: Domain, member_factory: Callable[..., Any], other_account: Account
) -> None:
    only_domains = member_factory("managedomains").user
    only_invoices = member_factory("invoices").user
    scoped = member_factory("managedomains", "invoices", scope={"domain": [], "service": []}).user
    stranger = other_account.owner
    for actor in (only_domains, only_invoices, scoped, stranger):
        with pytest.raises(OutOfReach):
            order(domain, actor=actor)
    assert not Invoice.objects.exists()
    both = member_factory("managedomains", "invoices", scope={"domain": [domain.pk]}).user
    assert order(domain, actor=both).ordered_by == both


def test_a_revoked_persons_order_is_refused(domain: Domain, member_factory: Any) -> None:
    membership = member_factory("managedomains", "invoices")
    membership.status = "revoked"
    membership.save()
    with pytest.raises(OutOfReach):
        order(domain, actor=membership.user)


def test_paid_by_credit_renews_once_after_the_commit(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    placed = order(domain)
    billing.credit_add(
        account_id=domain.account_id, amount=D("50"), reason="x", actor=domain.account.owner
    )
    with django_capture_on_commit_callbacks(execute=True):
        outcome = pay(placed.invoice_id, domain.account, billing.PayWithCredit())
    assert outcome.status == "paid"
    assert renews(registrar) == [("acme.example", "renew", 1)]
    domain.refresh_from_db()
    placed.refresh_from_db()
    assert domain.expiry_date == datetime.date(2028, 3, 1)
    assert placed.state == DomainRenewal.State.DONE
    # A replayed payment form changes nothing and renews nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert pay(placed.invoice_id, domain.account, billing.PayWithCredit()).status == "paid"
    assert PERIODIC_JOBS["domains.renewals"]() == ""
    assert len(renews(registrar)) == 1
    assert AuditEvent.objects.filter(action="domain.renewal_completed").count() == 1
    renewed = AuditEvent.objects.get(action="domain.renewed")
    assert not renewed.is_staff_action  # the customer's, not staff's


def test_paid_by_card_renews_once(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    placed = order(domain, years=2)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = pay(placed.invoice_id, domain.account, billing.PayWithNewCard(token=card()))
    assert outcome.status == "paid"
    assert renews(registrar) == [("acme.example", "renew", 2)]
    domain.refresh_from_db()
    assert domain.expiry_date == datetime.date(2029, 3, 1)


def test_paid_by_a_bank_transfer_staff_confirm(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any, admin_user: Any
) -> None:
    placed = order(domain)
    assert pay(placed.invoice_id, domain.account, billing.PayByBankTransfer()).status == "pending"
    assert renews(registrar) == []  # announced is not paid
    with django_capture_on_commit_callbacks(execute=True):
        billing.bank_transfer_confirm(invoice_id=placed.invoice_id, actor=admin_user)
    assert len(renews(registrar)) == 1
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.DONE


def test_a_card_payment_the_worker_settles_renews_once(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    placed = order(domain)
    outcome = pay(
        placed.invoice_id, domain.account, billing.PayWithNewCard(token=card(TIMEOUT_CARD))
    )
    assert outcome.status == "processing"
    assert renews(registrar) == []
    with django_capture_on_commit_callbacks(execute=True):
        billing.payments_reconcile_due(now=after_grace())
    assert len(renews(registrar)) == 1
    # Settling again, or the renewal job, renews nothing more.
    billing.payments_reconcile_due(now=after_grace())
    PERIODIC_JOBS["domains.renewals"]()
    assert len(renews(registrar)) == 1


def test_the_worker_renews_a_paid_order_whose_after_commit_run_was_lost(
    domain: Domain, registrar: Any, monkeypatch: Any
) -> None:
    placed = order(domain)
    billing.credit_add(
        account_id=domain.account_id, amount=D("50"), reason="x", actor=domain.account.owner
    )
    pay(placed.invoice_id, domain.account, billing.PayWithCredit())  # on_commit never runs here
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.PAID and renews(registrar) == []
    assert PERIODIC_JOBS["domains.renewals"]() == ""  # within the grace period: left alone
    monkeypatch.setattr(settings, "PENDING_CHANGE_GRACE_SECONDS", -1)
    assert "1 done" in PERIODIC_JOBS["domains.renewals"]()
    assert PERIODIC_JOBS["domains.renewals"]() == ""
    assert len(renews(registrar)) == 1


def test_a_registry_refusal_leaves_a_paid_failed_renewal_for_staff(
    domain: Domain,
    registrar: Any,
    django_capture_on_commit_callbacks: Any,
    admin_user: Any,
    login_client: Any,
) -> None:
    placed = order(domain)
    billing.credit_add(
        account_id=domain.account_id, amount=D("50"), reason="x", actor=domain.account.owner
    )
    registrar.refuse = "The registry refused the renewal."
    with django_capture_on_commit_callbacks(execute=True):
        outcome = pay(placed.invoice_id, domain.account, billing.PayWithCredit())
    assert outcome.status == "paid"  # the payment stands: never an error page
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.FAILED
    assert "refused" in placed.message
    assert Invoice.objects.get(pk=placed.invoice_id or 0).status == "paid"
    page = login_client(domain.account.owner, domain.account).get(
        reverse("domains:detail", args=[domain.pk])
    )
    assert "could not be made at the registry" in page.content.decode()
    # A second order is refused while the paid one waits for staff.
    with pytest.raises(DomainActionError):
        order(domain)
    # Staff retry it once the registry accepts.
    registrar.refuse = ""
    assert renewals.renewal_retry(order_id=placed.pk, staff=admin_user) == "done"
    assert len(renews(registrar)) == 1
    domain.refresh_from_db()
    assert domain.expiry_date == datetime.date(2028, 3, 1)


def test_an_unanswered_renewal_is_settled_by_the_reconciler(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    placed = order(domain)
    billing.credit_add(
        account_id=domain.account_id, amount=D("50"), reason="x", actor=domain.account.owner
    )
    registrar.uncertain = 99  # applied, never answered (every retry refused as stale)
    with django_capture_on_commit_callbacks(execute=True):
        pay(placed.invoice_id, domain.account, billing.PayWithCredit())
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.RENEWING
    registrar.uncertain = 0
    pending_changes_reconcile_due(now=after_grace())
    PERIODIC_JOBS["domains.renewals"]()
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.DONE
    assert len(renews(registrar)) == 1
    domain.refresh_from_db()
    assert domain.expiry_date == datetime.date(2028, 3, 1)


def test_a_cancelled_invoice_lets_the_customer_order_again(domain: Domain, admin_user: Any) -> None:
    placed = order(domain)
    billing.invoice_cancel(invoice_id=placed.invoice_id, actor=admin_user)
    again = order(domain, years=2)
    assert again.pk != placed.pk


# --- pages -------------------------------------------------------------------------------


def test_the_renew_page_offers_priced_periods_and_goes_to_payment(
    domain: Domain, login_client: Any
) -> None:
    client = login_client(domain.account.owner, domain.account)
    detail = client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert reverse("domains:renew", args=[domain.pk]) in detail
    page = client.get(reverse("domains:renew", args=[domain.pk])).content.decode()
    assert "1 year: 12.50 EUR" in page and "2 years: 24.00 EUR" in page
    assert "<legend>Renewal period</legend>" in page
    response = client.post(reverse("domains:renew", args=[domain.pk]), {"years": "2"})
    placed = DomainRenewal.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:invoice_pay", args=[placed.invoice_id])
    # A forged period is an error on the form, and changes nothing.
    forged = client.post(reverse("domains:renew", args=[domain.pk]), {"years": "7"})
    assert forged.status_code == 200
    assert DomainRenewal.objects.count() == 1


def test_no_price_explains_and_offers_a_ticket(
    account: Account, prices: None, login_client: Any
) -> None:
    dom = DomainFactory(account=account, name="acme.org")
    page = login_client(account.owner, account).get(reverse("domains:renew", args=[dom.pk]))
    body = page.content.decode()
    assert "no renewal price" in body and reverse("support:ticket_open") in body


@pytest.mark.parametrize("codes", [("managedomains",), ("invoices", "domains")])
def test_the_renew_page_needs_both_permissions(
    domain: Domain, member_factory: Any, login_client: Any, codes: tuple[str, ...]
) -> None:
    user = member_factory(*codes).user
    client = login_client(user, domain.account)
    assert client.get(reverse("domains:renew", args=[domain.pk])).status_code in (403, 404)
    assert client.post(reverse("domains:renew", args=[domain.pk]), {"years": "1"}).status_code in (
        403,
        404,
    )
    assert not DomainRenewal.objects.exists()


def test_another_accounts_or_out_of_scope_domain_is_a_404(
    domain: Domain, other_account: Account, member_factory: Any, login_client: Any, prices: None
) -> None:
    foreign = DomainFactory(account=other_account, name="globex.example")
    client = login_client(domain.account.owner, domain.account)
    assert (
        client.post(reverse("domains:renew", args=[foreign.pk]), {"years": "1"}).status_code == 404
    )
    scoped = member_factory("managedomains", "invoices", scope={"domain": []}).user
    client = login_client(scoped, domain.account)
    assert (
        client.post(reverse("domains:renew", args=[domain.pk]), {"years": "1"}).status_code == 404
    )
    assert not DomainRenewal.objects.exists()


# --- back office -------------------------------------------------------------------------


def test_staff_keep_the_price_list_and_retry_a_failed_renewal(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.test import Client

    from clientarea.accounts.tests.factories import UserFactory

    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    added = staff.post(
        reverse("admin:domains_domainprice_add"),
        {"tld": ".Example", "years": "3", "renew_price": "35.00", "currency": "eur"},
    )
    assert added.status_code == 302
    assert DomainPrice.objects.filter(tld="example", years=3, currency="EUR").exists()

    placed = order(domain)
    billing.credit_add(
        account_id=domain.account_id, amount=D("50"), reason="x", actor=domain.account.owner
    )
    registrar.unavailable = True
    with django_capture_on_commit_callbacks(execute=True):
        pay(placed.invoice_id, domain.account, billing.PayWithCredit())
    listing = staff.get(reverse("admin:domains_domainrenewal_changelist") + "?state=failed")
    assert "acme.example" in listing.content.decode()
    registrar.unavailable = False
    staff.post(
        reverse("admin:domains_domainrenewal_changelist"),
        {"action": "retry_renewal", "_selected_action": [placed.pk]},
    )
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.DONE
    assert len(renews(registrar)) == 1


def test_a_revoked_persons_old_session_renews_adds_and_combines_nothing(
    domain: Domain, member_factory: Any, login_client: Any
) -> None:
    from clientarea.accounts.services import membership_revoke
    from clientarea.billing.tests.factories import make_invoice

    first, second = make_invoice(domain.account), make_invoice(domain.account)
    membership = member_factory("managedomains", "invoices")
    client = login_client(membership.user, domain.account)
    assert client.get(reverse("domains:renew", args=[domain.pk])).status_code == 200
    membership_revoke(membership=membership, actor=domain.account.owner)
    before = Invoice.objects.count()
    for url, data in (
        (reverse("domains:renew", args=[domain.pk]), {"years": "1"}),
        (reverse("billing:add_funds"), {"amount": "50.00"}),
        (reverse("billing:pay_several"), {"invoices": [first.pk, second.pk]}),
    ):
        response = client.post(url, data)
        assert response.status_code in (302, 403, 404), url
        assert "/pay/" not in response.get("Location", ""), url
    assert Invoice.objects.count() == before
    assert not DomainRenewal.objects.exists()


def test_a_renewal_paid_within_several_invoices_at_once_renews_once(
    domain: Domain, registrar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from clientarea.billing import purchases
    from clientarea.billing.tests.factories import make_invoice

    placed = order(domain)
    hosting = make_invoice(domain.account)
    combined = purchases.combined_invoice_create(
        account=domain.account,
        actor=domain.account.owner,
        invoice_ids=[placed.invoice_id or 0, hosting.pk],
    )
    with django_capture_on_commit_callbacks(execute=True):
        outcome = pay(combined.pk, domain.account, billing.PayWithNewCard(token=card()))
    assert outcome.status == "paid"
    assert len(renews(registrar)) == 1
    placed.refresh_from_db()
    assert placed.state == DomainRenewal.State.DONE


def test_staff_typing_a_price_twice_get_a_form_error(domain: Domain) -> None:
    from django.test import Client

    from clientarea.accounts.tests.factories import UserFactory

    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = staff.post(
        reverse("admin:domains_domainprice_add"),
        {"tld": ".EXAMPLE", "years": "1", "renew_price": "10.00", "currency": "eur"},
    )
    assert page.status_code == 200  # the same TLD, period and currency as a price listed
    assert "already exists" in page.content.decode()
    assert DomainPrice.objects.filter(tld="example", years=1, currency="EUR").count() == 1
