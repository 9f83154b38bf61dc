"""`manage.py check --deploy` with Stripe as the card gateway: live keys and a webhook
secret, or DEMO_MODE for a demonstration on test keys."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from clientarea.billing.checks import stripe_settings_check

LIVE_SECRET = "sk_live_51Hexample0123456789"
LIVE_PUBLISHABLE = "pk_live_51Hexample0123456789"


@pytest.fixture
def stripe_configured(settings: Any) -> Any:
    settings.BILLING_CARD_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = LIVE_SECRET
    settings.STRIPE_PUBLISHABLE_KEY = LIVE_PUBLISHABLE
    settings.STRIPE_WEBHOOK_SECRET = "whsec_0123456789"
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    settings.DEMO_MODE = False
    return settings


def ids() -> list[str]:
    return sorted(message.id or "" for message in stripe_settings_check())


def test_live_keys_and_a_webhook_secret_pass(stripe_configured: Any) -> None:
    assert ids() == []


def test_nothing_is_checked_for_another_gateway(stripe_configured: Any) -> None:
    stripe_configured.BILLING_CARD_GATEWAY = "sandbox"
    stripe_configured.STRIPE_SECRET_KEY = "sk_test_x"
    assert ids() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_SECRET_KEY", "sk_test_51Hexample"),
        ("STRIPE_SECRET_KEY", "rk_test_51Hexample"),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_51Hexample"),
    ],
)
def test_a_test_key_is_an_error_unless_demo_mode(
    stripe_configured: Any, name: str, value: str
) -> None:
    setattr(stripe_configured, name, value)
    errors = stripe_settings_check()
    assert "billing.E003" in [e.id for e in errors]
    assert name in next(e.msg for e in errors if e.id == "billing.E003")
    stripe_configured.DEMO_MODE = True
    assert "billing.E003" not in ids()


def test_both_test_keys_in_demo_mode_pass(stripe_configured: Any) -> None:
    stripe_configured.STRIPE_SECRET_KEY = "sk_test_51Hexample"
    stripe_configured.STRIPE_PUBLISHABLE_KEY = "pk_test_51Hexample"
    stripe_configured.DEMO_MODE = True
    assert ids() == []


def test_a_missing_webhook_secret_is_an_error(stripe_configured: Any) -> None:
    stripe_configured.STRIPE_WEBHOOK_SECRET = ""
    assert ids() == ["billing.E005"]
    stripe_configured.DEMO_MODE = True
    assert ids() == ["billing.E005"]


@pytest.mark.parametrize("name", ["STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY"])
def test_a_missing_key_is_an_error(stripe_configured: Any, name: str) -> None:
    setattr(stripe_configured, name, "")
    assert ids() == ["billing.E001"]


def test_keys_swapped_or_of_different_modes(stripe_configured: Any) -> None:
    stripe_configured.STRIPE_SECRET_KEY = LIVE_PUBLISHABLE
    stripe_configured.STRIPE_PUBLISHABLE_KEY = LIVE_SECRET
    assert ids() == ["billing.E002", "billing.E002"]
    stripe_configured.STRIPE_SECRET_KEY = LIVE_SECRET
    stripe_configured.STRIPE_PUBLISHABLE_KEY = "pk_test_51Hexample"
    stripe_configured.DEMO_MODE = True
    assert ids() == ["billing.E004"]


def test_a_plain_http_api_address_is_an_error(stripe_configured: Any) -> None:
    stripe_configured.STRIPE_API_BASE = "http://127.0.0.1:12111"
    assert ids() == ["billing.E006"]


def test_the_check_runs_with_check_deploy(stripe_configured: Any) -> None:
    stripe_configured.STRIPE_WEBHOOK_SECRET = ""
    assert stripe_settings_check in checks.registry.registry.get_checks(
        include_deployment_checks=True
    )
    with pytest.raises(SystemCheckError, match="STRIPE_WEBHOOK_SECRET"):
        call_command("check", "--deploy", "--fail-level", "ERROR")


def test_an_unknown_card_gateway_is_reported_by_every_check(settings: Any) -> None:
    from clientarea.billing.checks import card_gateway_check

    settings.BILLING_CARD_GATEWAY = "paypal"
    (error,) = card_gateway_check()
    assert error.id == "billing.E007" and "'paypal'" in error.msg
    for code in ("", "sandbox", "stripe"):
        settings.BILLING_CARD_GATEWAY = code
        assert card_gateway_check() == []
