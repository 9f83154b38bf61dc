"""Names, the company and the address are one line: a line break or a control character is
refused with a clear message by the pages and by the services themselves, so a caller
that skips the form (the API) cannot store one either.

The reproduction: a carriage return in the company name (Modify Account Profile) was
saved, and from then on every email whose subject names the account failed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from clientarea.accounts import services
from clientarea.accounts.models import Account, Contact, User
from clientarea.accounts.tests.factories import UserFactory
from clientarea.accounts.tests.helpers import invitation_token_from_outbox, open_invitation
from clientarea.audit.models import AuditEvent
from clientarea.core.validators import SINGLE_LINE_MESSAGE

pytestmark = pytest.mark.django_db

BAD = ["Acme\rLtd", "Acme\nBcc: x@example.com", "Acme\x00", "Acme\x1b[2J", "A\u2028B", "\u202eAcme"]
NUL_MESSAGE = "Null characters are not allowed."
PROFILE = {
    "company_name": "Acme Web Studio",
    "address_line1": "1 Main Street",
    "address_line2": "",
    "city": "Cork",
    "postcode": "T12 AB34",
    "country": "IE",
}


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("field", ["company_name", "address_line1", "address_line2", "city"])
def test_modify_account_profile_refuses_a_line_break_and_saves_nothing(
    login_client: Callable[..., Client], account: Account, field: str, value: str
) -> None:
    before = Account.objects.values().get(pk=account.pk)
    client = login_client(account.owner, account)
    response = client.post(reverse("accounts:account_profile"), {**PROFILE, field: value})
    assert response.status_code == 200
    # (Django's form fields refuse NUL first, with their own message.)
    assert (NUL_MESSAGE if "\x00" in value else SINGLE_LINE_MESSAGE) in response.content.decode()
    assert Account.objects.values().get(pk=account.pk) == before
    assert not AuditEvent.objects.filter(action="account.profile_changed").exists()


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_my_profile_refuses_a_line_break_in_a_name(
    login_client: Callable[..., Client], field: str
) -> None:
    user = UserFactory(first_name="Olivia", last_name="Owner")
    data = {"first_name": "Olivia", "last_name": "Owner", field: "Olivia\r\nBcc: x@example.com"}
    response = login_client(user).post(reverse("accounts:profile"), data)
    assert response.status_code == 200 and SINGLE_LINE_MESSAGE in response.content.decode()
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Olivia", "Owner")


def test_a_new_invitee_cannot_sign_up_with_a_control_character_in_the_name(
    client: Client, account: Account
) -> None:
    services.invitation_create(
        account=account, actor=account.owner, email="new@example.com", permission_codes=["tickets"]
    )
    page = open_invitation(client, invitation_token_from_outbox("new@example.com"))
    password = "a-long-and-unusual-invitee-passphrase"
    response = client.post(
        page,
        {
            "first_name": "Nia\x1b]0;",
            "last_name": "New",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 200 and SINGLE_LINE_MESSAGE in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()


@pytest.mark.parametrize("value", BAD)
def test_the_profile_service_refuses_what_the_form_refuses(account: Account, value: str) -> None:
    before = Account.objects.values().get(pk=account.pk)
    with pytest.raises(ValidationError) as caught:
        services.account_update_profile(
            account=account, actor=account.owner, data={**PROFILE, "company_name": value}
        )
    assert caught.value.message_dict == {"company_name": [SINGLE_LINE_MESSAGE]}
    assert Account.objects.values().get(pk=account.pk) == before
    assert not AuditEvent.objects.filter(action="account.profile_changed").exists()


def test_the_profile_service_still_saves_good_values(account: Account) -> None:
    services.account_update_profile(
        account=account, actor=account.owner, data={**PROFILE, "company_name": "Ácme Teo."}
    )
    account.refresh_from_db()
    assert account.company_name == "Ácme Teo."


def test_the_user_services_refuse_a_control_character_in_a_name() -> None:
    user: User = UserFactory(first_name="Olivia", last_name="Owner")
    with pytest.raises(ValidationError) as caught:
        services.user_update_profile(user=user, first_name="Olivia", last_name="O\rwner")
    assert caught.value.message_dict == {"last_name": [SINGLE_LINE_MESSAGE]}
    user.refresh_from_db()
    assert user.last_name == "Owner"
    assert not AuditEvent.objects.filter(action="user.profile_changed").exists()
    with pytest.raises(ValidationError):
        services.user_create(email="n@example.com", password=None, first_name="N\x00")
    with pytest.raises(ValidationError):
        services.account_create(owner=user, company_name="Acme\u2029Ltd")
    assert not User.objects.filter(email="n@example.com").exists()
    assert not Account.objects.filter(owner=user).exists()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"name": "Bea\r\nBcc: x@example.com"}, f"Name: {SINGLE_LINE_MESSAGE}"),
        ({"phone": "+353 1\x1b[2J"}, f"Phone: {SINGLE_LINE_MESSAGE}"),
        ({"email": "bea\r@example.com"}, "Email: Enter a valid email address."),
    ],
)
def test_the_contact_services_refuse_what_the_form_refuses(
    account: Account, changes: dict[str, str], error: str
) -> None:
    data = {"name": "Bea", "email": "bea@example.com", "phone": "", "email_kinds": ["invoice"]}
    with pytest.raises(services.ContactError) as caught:
        services.contact_create(account=account, actor=account.owner, data={**data, **changes})
    assert str(caught.value) == error
    assert not Contact.objects.exists()
    contact = services.contact_create(account=account, actor=account.owner, data=data)
    before = Contact.objects.values().get(pk=contact.pk)
    with pytest.raises(services.ContactError):
        services.contact_update(contact=contact, actor=account.owner, data={**data, **changes})
    assert Contact.objects.values().get(pk=contact.pk) == before
