"""The account's VAT / tax number on Account Details: optional, one line, an EU VAT number
checked per member state for an account in the EU, any tax identifier elsewhere; bad
input is a message on the form and changes nothing; the `profile` permission, checked by
the service too; audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from clientarea.accounts import services
from clientarea.accounts.models import Account, Membership
from clientarea.accounts.services import AccessError
from clientarea.accounts.tax_numbers import tax_number_clean
from clientarea.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "accounts:account_profile"


def details(account: Account, **changes: str) -> dict[str, str]:
    """The Account Details form as the browser posts it, with `changes`."""
    return {
        "company_name": account.company_name,
        "address_line1": account.address_line1,
        "address_line2": account.address_line2,
        "city": account.city,
        "postcode": account.postcode,
        "country": str(account.country),
        "tax_number": account.tax_number,
        **changes,
    }


@pytest.mark.parametrize(
    ("typed", "country", "stored"),
    [
        ("IE1234567T", "IE", "IE1234567T"),
        ("ie 1234567 t", "IE", "IE1234567T"),  # compact, upper case
        ("1234567T", "IE", "IE1234567T"),  # the account's country's prefix assumed
        ("DE 123 456 788", "DE", "DE123456788"),
        ("123456788", "DE", "DE123456788"),
        ("DE123456788", "IE", "DE123456788"),  # registered in another member state
        ("U13585627", "AT", "ATU13585627"),
        ("ES-B58378431", "ES", "ESB58378431"),
        ("094259216", "GR", "EL094259216"),  # Greece's VAT prefix is EL
        ("GR094259216", "GR", "EL094259216"),
        ("FR40303265045", "FR", "FR40303265045"),
        ("  ", "IE", ""),  # optional
        ("12-3456789", "US", "12-3456789"),  # elsewhere: as the tax authority writes it
        ("CHE-123.456.789  MWST", "CH", "CHE-123.456.789 MWST"),
        ("GB123456789", "GB", "GB123456789"),
    ],
)
def test_tax_numbers_accepted(typed: str, country: str, stored: str) -> None:
    assert tax_number_clean(typed, country=country) == stored


@pytest.mark.parametrize(
    ("typed", "country", "message"),
    [
        ("DE123456789", "DE", "its check digits do not match"),
        ("IE123", "IE", "wrong number of characters for a VAT number of Ireland"),
        ("GB123456789", "IE", "GB is not the prefix of an EU member state"),
        ("US12-3456789", "DE", "US is not the prefix of an EU member state"),
        ("ATX13585627", "AT", "not in the format of a VAT number of Austria"),
        ("ABC", "US", "as your tax authority writes it"),  # no digit
        ("<b>12</b>", "US", "as your tax authority writes it"),
        ("1" * 41, "US", "at most 40 characters"),
    ],
)
def test_tax_numbers_refused_with_a_clear_message(typed: str, country: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        tax_number_clean(typed, country=country)
    assert message in caught.value.messages[0]


def test_account_details_save_the_vat_number_compact_and_audit_it(
    login_client: Callable[..., Client], account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("profile")
    client = login_client(member.user, account)
    page = client.get(reverse(URL)).content.decode()
    assert 'name="tax_number"' in page and "VAT / tax number" in page
    response = client.post(reverse(URL), details(account, tax_number="ie 1234567t"))
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.tax_number == "IE1234567T"
    event = AuditEvent.objects.get(action="account.profile_changed")
    assert event.actor == member.user
    assert event.changes == {"tax_number": ["", "IE1234567T"]}
    assert 'value="IE1234567T"' in client.get(reverse(URL)).content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tax_number": "IE1234567X"}, "This VAT number is not valid"),
        ({"tax_number": "GB123456789"}, "GB is not the prefix of an EU member state"),
        ({"tax_number": "IE1234567T\nIE"}, "line break"),
        # A US tax id stays refused when the country is Ireland.
        ({"tax_number": "12-3456789"}, "This VAT number is not valid"),
    ],
)
def test_a_bad_tax_number_is_a_form_error_and_changes_nothing(
    login_client: Callable[..., Client], account: Account, changes: dict, message: str
) -> None:
    Account.objects.filter(pk=account.pk).update(tax_number="IE1234567T")
    account.refresh_from_db()
    before = Account.objects.values().get(pk=account.pk)
    client = login_client(account.owner, account)
    response = client.post(reverse(URL), details(account, company_name="Renamed", **changes))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["tax_number"] and message in errors["tax_number"][0]
    assert Account.objects.values().get(pk=account.pk) == before
    assert not AuditEvent.objects.filter(action="account.profile_changed").exists()


def test_the_tax_number_is_checked_against_the_country_chosen_with_it(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    moved = details(account, country="US", tax_number="12-3456789")
    assert client.post(reverse(URL), moved).status_code == 302
    account.refresh_from_db()
    assert (account.country, account.tax_number) == ("US", "12-3456789")
    # Back to Germany with the US number: refused until it is a German VAT number.
    back = client.post(reverse(URL), details(account, country="DE"))
    assert "tax_number" in back.context["form"].errors
    assert (
        client.post(reverse(URL), details(account, country="DE", tax_number="")).status_code == 302
    )
    account.refresh_from_db()
    assert (account.country, account.tax_number) == ("DE", "")


def test_the_profile_service_refuses_a_bad_vat_number_for_any_entry_point(
    account: Account,
) -> None:
    with pytest.raises(ValidationError) as caught:
        services.account_update_profile(
            account=account, actor=account.owner, data={"tax_number": "IE1234567X"}
        )
    assert list(caught.value.message_dict) == ["tax_number"]
    # A country change alone is checked against the number already stored.
    Account.objects.filter(pk=account.pk).update(country="US", tax_number="12-3456789")
    account.refresh_from_db()
    with pytest.raises(ValidationError):
        services.account_update_profile(
            account=account, actor=account.owner, data={"country": "DE"}
        )
    account.refresh_from_db()
    assert (account.country, account.tax_number) == ("US", "12-3456789")
    services.account_update_profile(
        account=account, actor=account.owner, data={"country": "DE", "tax_number": "de123456788"}
    )
    account.refresh_from_db()
    assert (account.country, account.tax_number) == ("DE", "DE123456788")


def test_the_profile_service_checks_the_profile_permission_itself(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    accountant = member_factory("invoices").user
    with pytest.raises(AccessError):
        services.account_update_profile(
            account=account, actor=accountant, data={"tax_number": "IE1234567T"}
        )
    revoked = member_factory("profile", status=Membership.Status.REVOKED).user
    with pytest.raises(AccessError):
        services.account_update_profile(
            account=account, actor=revoked, data={"company_name": "Hijacked"}
        )
    account.refresh_from_db()
    assert (account.tax_number, account.company_name) == ("", "Acme Web Studio")
    assert not AuditEvent.objects.filter(action="account.profile_changed").exists()


def test_account_create_refuses_a_bad_vat_number(account: Account) -> None:
    with pytest.raises(ValidationError) as caught:
        services.account_create(owner=account.owner, country="IE", tax_number="IE1")
    assert list(caught.value.message_dict) == ["tax_number"]
    made = services.account_create(owner=account.owner, country="IE", tax_number="1234567t")
    assert made.tax_number == "IE1234567T"


def test_the_model_checks_it_too_for_the_admin(account: Account) -> None:
    account.tax_number = "IE1"
    with pytest.raises(ValidationError) as caught:
        account.full_clean()
    assert list(caught.value.message_dict) == ["tax_number"]
    account.tax_number = "IE1234567T\nIE"
    with pytest.raises(ValidationError) as caught:
        account.full_clean()
    assert len(caught.value.message_dict["tax_number"]) == 1  # said once, as a line break
    account.tax_number = " ie 1234567t "
    account.full_clean()
    assert account.tax_number == "IE1234567T"
