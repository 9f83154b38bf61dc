"""Demo domains: an IDN and one expiring soon for Acme, a couple for Globex."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from clientarea.core.demo import DemoContext

from . import names
from .models import Domain

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
