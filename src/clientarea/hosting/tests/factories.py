from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import factory

from clientarea.accounts.tests.factories import AccountFactory
from clientarea.hosting.models import Service

SERVICE_PASSWORD = "Velvet-Lantern-Quay-38"


class ServiceFactory(factory.django.DjangoModelFactory[Service]):
    class Meta:
        model = Service
        skip_postgeneration_save = True

    account = factory.SubFactory(AccountFactory)
    product_name = factory.Sequence(lambda n: f"cPanel Hosting {n:03d}")
    domain = factory.Sequence(lambda n: f"site{n}.example.com")
    status = Service.Status.ACTIVE
    billing_cycle = Service.BillingCycle.MONTHLY
    amount = Decimal("9.99")
    next_due_date = date(2030, 1, 1)
    server_hostname = "cp1.hosting.example"
    username = factory.Sequence(lambda n: f"user{n}")

    @factory.post_generation
    def password(obj: Service, create: bool, extracted: str | None, **kwargs: Any) -> None:
        value = SERVICE_PASSWORD if extracted is None else extracted
        if value:
            obj.store_password(value)
            if create:
                obj.save(update_fields=["password_ciphertext", "password_changed_at"])
