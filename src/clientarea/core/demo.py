"""The demo data behind `make run`.

The foundation creates the people and accounts; every other app that has a ``demo``
module with a ``load(ctx: DemoContext)`` function adds its own data on top (invoices,
services, tickets...). The apps are discovered, not imported here, so the shell stays
independent of the domain apps.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from decimal import Decimal

from django.apps import apps
from django.db import transaction

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import ALL_CODES, Perm
from clientarea.accounts.services import account_create, membership_grant, user_create

DEMO_PASSWORD = "correct-horse-battery-staple"


@dataclass
class DemoContext:
    owner: User
    accountant: User
    developer: User
    partner: User
    staff: User
    other_owner: User
    main: Account
    second: Account
    other: Account


def demo_exists() -> bool:
    return User.objects.filter(email="owner@example.com").exists()


@transaction.atomic
def demo_load() -> DemoContext:
    def person(email: str, first: str, last: str, *, staff: bool = False) -> User:
        user = user_create(email=email, password=DEMO_PASSWORD, first_name=first, last_name=last)
        if staff:
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        return user

    owner = person("owner@example.com", "Olivia", "Owner")
    accountant = person("accountant@example.com", "Aidan", "Accountant")
    developer = person("developer@example.com", "Dana", "Developer")
    partner = person("partner@example.com", "Pat", "Partner")
    staff = person("staff@example.com", "Sam", "Staff", staff=True)
    other_owner = person("other@example.com", "Oscar", "Other")

    main = account_create(
        owner=owner,
        company_name="Acme Web Studio",
        address_line1="12 Harbour Road",
        city="Cork",
        postcode="T12 AB34",
        country="IE",
        tax_number="IE1234567T",
        currency="EUR",
        credit_balance=Decimal("25.00"),
    )
    second = account_create(
        owner=owner, company_name="Acme Holdings", city="Galway", country="IE", currency="EUR"
    )
    other = account_create(
        owner=other_owner, company_name="Globex Ltd", city="Berlin", country="DE", currency="EUR"
    )
    membership_grant(account=main, user=accountant, permission_codes=[Perm.INVOICES, Perm.EMAILS])
    membership_grant(
        account=main,
        user=developer,
        permission_codes=[Perm.MANAGE_PRODUCTS, Perm.MANAGE_DOMAINS, Perm.TICKETS],
    )
    membership_grant(account=main, user=partner, permission_codes=sorted(ALL_CODES))
    # The developer also works for a second customer: they see the account switcher.
    membership_grant(account=other, user=developer, permission_codes=[Perm.PRODUCTS, Perm.TICKETS])

    ctx = DemoContext(
        owner, accountant, developer, partner, staff, other_owner, main, second, other
    )
    for config in apps.get_app_configs():
        if not config.name.startswith("clientarea.") or config.name == "clientarea.core":
            continue
        module_name = f"{config.name}.demo"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).load(ctx)
    return ctx


DEMO_LOGINS_TEXT = """Demo logins (password for all: {password}):
  owner@example.com       owner of Acme Web Studio and Acme Holdings
  accountant@example.com  sub-account: View & Pay Invoices, View Email History
  developer@example.com   sub-account: product passwords, domain settings, tickets (two accounts)
  webdev@example.com      sub-account limited to one website: the Business hosting and
                          acme-studio.com only (product password, domain settings, tickets)
  partner@example.com     sub-account with All Permissions; two-factor on, TOTP secret
                          JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP (add it to an authenticator app)
  former@example.com      revoked sub-account of Acme Web Studio (sees "access removed")
  contractor@example.com  sub-account of Acme Web Studio whose access expired
  other@example.com       owner of another customer, Globex Ltd
  staff@example.com       back office at /admin/; two-factor on, the same TOTP secret
Pending invitation: bookkeeper@example.com. Click Resend Invite in User Management, then
open the email in the local mail viewer (back office, staff login; its demo banner links
to it): /admin/notifications/outboxemail/mail/
Paying for things, as owner@example.com: Domains > acme-studio.com (expires in 10 days) >
Renew; Billing > Add Funds; Billing: tick the two unpaid invoices > Pay Selected Invoices
(sandbox card 4242 4242 4242 4242). Renewal prices: back office > Domain prices."""
