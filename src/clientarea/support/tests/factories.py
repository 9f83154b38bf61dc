from __future__ import annotations

from typing import Any

import factory
from django.core.files.base import ContentFile

from clientarea.accounts.tests.factories import AccountFactory, UserFactory
from clientarea.support.models import Attachment, Department, Ticket, TicketMessage

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


class DepartmentFactory(factory.django.DjangoModelFactory[Department]):
    class Meta:
        model = Department
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Department {n}")


class TicketFactory(factory.django.DjangoModelFactory[Ticket]):
    class Meta:
        model = Ticket

    account = factory.SubFactory(AccountFactory)
    opener = factory.LazyAttribute(lambda t: t.account.owner)
    opener_name = factory.LazyAttribute(lambda t: t.opener.get_full_name())
    opener_email = factory.LazyAttribute(lambda t: t.opener.email)
    department = factory.SubFactory(DepartmentFactory, name="Technical Support")
    subject = factory.Sequence(lambda n: f"Ticket subject {n}")


class TicketMessageFactory(factory.django.DjangoModelFactory[TicketMessage]):
    class Meta:
        model = TicketMessage

    ticket = factory.SubFactory(TicketFactory)
    author = factory.LazyAttribute(lambda m: m.ticket.opener or UserFactory())
    author_name = factory.LazyAttribute(lambda m: m.author.get_full_name())
    author_email = factory.LazyAttribute(lambda m: m.author.email)
    body = "Hello, something is wrong."


class AttachmentFactory(factory.django.DjangoModelFactory[Attachment]):
    class Meta:
        model = Attachment

    message = factory.SubFactory(TicketMessageFactory)
    file: Any = factory.LazyFunction(lambda: ContentFile(PNG, name="shot.png"))
    original_name = "shot.png"
    content_type = "image/png"
    size = len(PNG)
