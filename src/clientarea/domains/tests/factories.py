from __future__ import annotations

from datetime import date
from typing import Any

import factory

from clientarea.accounts.tests.factories import AccountFactory
from clientarea.domains.models import Domain


class DomainFactory(factory.django.DjangoModelFactory[Domain]):
    class Meta:
        model = Domain

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"domain{n:04d}.example")
    status = Domain.Status.ACTIVE
    registration_date = date(2024, 1, 10)
    expiry_date = date(2030, 1, 10)
    auto_renew = True
    registrar_lock = True
    nameservers: Any = factory.LazyFunction(lambda: ["ns1.host.example", "ns2.host.example"])
