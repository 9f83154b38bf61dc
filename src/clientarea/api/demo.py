"""Demo API token: the owner of Acme Web Studio has one, used recently, so the API Tokens
page shows what a token looks like. Its secret is made and thrown away here: a secret is
shown once, to the person who creates a token, and the demo prints none."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from clientarea.accounts.permissions import Perm
from clientarea.core.demo import DemoContext

from .models import ApiToken
from .services import token_create


def load(ctx: DemoContext) -> None:
    token, _ = token_create(
        account=ctx.main,
        actor=ctx.owner,
        name="Accounting export",
        permission_codes=[Perm.INVOICES],
        expires_at=timezone.now() + timedelta(days=90),
        allowed_networks=["203.0.113.0/24"],
    )
    ApiToken.objects.filter(pk=token.pk).update(
        last_used_at=timezone.now() - timedelta(hours=3), last_used_ip="203.0.113.10"
    )
