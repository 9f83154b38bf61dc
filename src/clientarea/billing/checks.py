"""``manage.py check --deploy``: the Stripe settings, when Stripe is the card gateway.

Test keys (sk_test_/pk_test_, or the restricted rk_test_) take no real money: refused
unless DEMO_MODE says this is a demonstration. Without the webhook secret no event can be
verified, so payments would be settled only by the reconciliation job: refused too.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error, Tags

STRIPE = "stripe"


def stripe_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.BILLING_CARD_GATEWAY != STRIPE:
        return []
    errors: list[CheckMessage] = []
    secret = settings.STRIPE_SECRET_KEY
    publishable = settings.STRIPE_PUBLISHABLE_KEY
    for name, value, prefixes in (
        ("STRIPE_SECRET_KEY", secret, ("sk_", "rk_")),
        ("STRIPE_PUBLISHABLE_KEY", publishable, ("pk_",)),
    ):
        if not value:
            errors.append(
                Error(
                    f"{name} is not set.",
                    hint="Copy it from Stripe's dashboard (Developers > API keys).",
                    id="billing.E001",
                )
            )
        elif not value.startswith(prefixes):
            errors.append(
                Error(
                    f"{name} is not a Stripe key of that kind (it should start with "
                    f"{' or '.join(prefixes)}).",
                    hint="The secret key goes in STRIPE_SECRET_KEY, the publishable one in "
                    "STRIPE_PUBLISHABLE_KEY.",
                    id="billing.E002",
                )
            )
    test_keys = [
        name
        for name, value in (("STRIPE_SECRET_KEY", secret), ("STRIPE_PUBLISHABLE_KEY", publishable))
        if value.startswith(("sk_test_", "rk_test_", "pk_test_"))
    ]
    if test_keys and not settings.DEMO_MODE:
        verb = "is a test key" if len(test_keys) == 1 else "are test keys"
        errors.append(
            Error(
                f"{' and '.join(test_keys)} {verb}: "
                "payments would be taken in Stripe's test mode and no money would move.",
                hint="Use the live keys (sk_live_..., pk_live_...), or set DEMO_MODE=true "
                "for a demonstration.",
                id="billing.E003",
            )
        )
    live = [v.split("_")[1] == "live" for v in (secret, publishable) if v.count("_") >= 2]
    if len(live) == 2 and live[0] != live[1]:
        errors.append(
            Error(
                "STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY are of different modes (one "
                "live, one test): the browser and the server would not see the same payments.",
                hint="Take both keys from the same mode of the same Stripe account.",
                id="billing.E004",
            )
        )
    if not settings.STRIPE_WEBHOOK_SECRET:
        errors.append(
            Error(
                "STRIPE_WEBHOOK_SECRET is not set: Stripe's events cannot be verified, so "
                "none would be processed.",
                hint="Add an endpoint for /billing/stripe/webhook/ in Stripe's dashboard "
                "(Developers > Webhooks) and copy its signing secret (whsec_...).",
                id="billing.E005",
            )
        )
    if not settings.STRIPE_API_BASE.startswith("https://") and not settings.DEMO_MODE:
        errors.append(
            Error(
                "STRIPE_API_BASE is not an https:// address: the secret key would cross the "
                "network in clear.",
                hint="Leave STRIPE_API_BASE unset (Stripe's own address).",
                id="billing.E006",
            )
        )
    return errors


def card_gateway_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A BILLING_CARD_GATEWAY this installation cannot use would break every pay page."""
    from .gateways import CARD_GATEWAY_CODES

    code = settings.BILLING_CARD_GATEWAY
    if code and code not in CARD_GATEWAY_CODES:
        return [
            Error(
                f"BILLING_CARD_GATEWAY={code!r} is not a card gateway of this installation.",
                hint=f"Use one of {', '.join(CARD_GATEWAY_CODES)}, or leave it empty for "
                "no card payments (credit and bank transfer only).",
                id="billing.E007",
            )
        ]
    return []


def register() -> None:
    checks.register(stripe_settings_check, Tags.security, deploy=True)
    checks.register(card_gateway_check)
