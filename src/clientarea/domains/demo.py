"""Demo domains: an IDN and one expiring soon for Acme, a couple for Globex."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from clientarea.core.demo import DemoContext

from . import names
from .models import Domain, DomainPrice

OUR_NAMESERVERS = ["ns1.jiinubi-dns.example", "ns2.jiinubi-dns.example"]


def load(ctx: DemoContext) -> None:
    today = timezone.localdate()

    def days(n: int) -> timedelta:
        return timedelta(days=n)

    rows = [
        (ctx.main, "acme-web.ie", Domain.Status.ACTIVE, -900, 195, True, True, OUR_NAMESERVERS),
        (ctx.main, "café-example.ie", Domain.Status.ACTIVE, -400, 330, True, True,
         OUR_NAMESERVERS),
        (ctx.main, "acme-studio.com", Domain.Status.ACTIVE, -355, 10, False, True,
         ["ns1.acme-web.ie", "ns2.acme-web.ie", "ns3.acme-web.ie"]),
        (ctx.main, "acmeweb.eu", Domain.Status.EXPIRED, -760, -5, False, False, OUR_NAMESERVERS),
        (ctx.main, "acme-studio.dev", Domain.Status.PENDING, 0, 365, True, True, OUR_NAMESERVERS),
        (ctx.other, "globex.de", Domain.Status.ACTIVE, -1200, 240, True, True,
         ["ns1.globex.de", "ns2.globex.de"]),
        (ctx.other, "globex-corp.com", Domain.Status.ACTIVE, -200, 165, True, False,
         OUR_NAMESERVERS),
    ]  # fmt: skip
    for account, name, status, registered, expires, auto_renew, lock, nameservers in rows:
        Domain.objects.create(
            account=account,
            name=names.domain_name_normalise(name),
            status=status,
            registration_date=today + days(registered),
            expiry_date=today + days(expires),
            auto_renew=auto_renew,
            registrar_lock=lock,
            nameservers=[names.nameserver_normalise(ns) for ns in nameservers],
        )

    _prices()
    _scoped_web_developer(ctx)


def _prices() -> None:
    """The renewal price list (EUR): .com, .ie and .eu; none for .de, so Globex's
    globex.de shows the Renew page without a price (it offers a ticket)."""
    from decimal import Decimal

    rows = [
        ("com", 1, "14.99"), ("com", 2, "28.99"), ("com", 3, "42.00"),
        ("ie", 1, "19.99"), ("ie", 2, "38.00"),
        ("eu", 1, "9.99"), ("eu", 2, "19.50"),
    ]  # fmt: skip
    for tld, years, price in rows:
        DomainPrice.objects.create(tld=tld, years=years, renew_price=Decimal(price), currency="EUR")


def _scoped_web_developer(ctx: DemoContext) -> None:
    """A web developer hired for one website: Acme's Business hosting and
    acme-studio.com, nothing else (the services are the hosting demo's, loaded before;
    found through the scope registry, as this app does not import hosting)."""
    from clientarea.accounts.permissions import Perm
    from clientarea.accounts.scope import SCOPE_KINDS
    from clientarea.accounts.services import membership_grant, user_create
    from clientarea.core.demo import DEMO_PASSWORD

    service_ids = [
        pk
        for pk, label in SCOPE_KINDS["service"].choices(ctx.main)
        if label.startswith("cPanel Hosting · Business")
    ]
    domain_ids = Domain.objects.filter(account=ctx.main, name="acme-studio.com").values_list(
        "pk", flat=True
    )
    web_developer = user_create(
        email="webdev@example.com", password=DEMO_PASSWORD, first_name="Wes", last_name="Webb"
    )
    membership_grant(
        account=ctx.main,
        user=web_developer,
        actor=ctx.owner,
        permission_codes=[Perm.MANAGE_PRODUCTS, Perm.MANAGE_DOMAINS, Perm.TICKETS],
        scope={"service": service_ids, "domain": list(domain_ids)},
    )
