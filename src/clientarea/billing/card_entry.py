"""What a page that takes a card needs: the card processor's script and its settings, and
a Content-Security-Policy that lets exactly that processor in, on those pages only.

The card's inputs are never part of our forms (``billing/_card_entry.html``): with Stripe
they live in Stripe's own frames (the Payment Element); with the sandbox they are inputs
without a ``name``, whose number the page's script (``billing/card-entry.js``) maps to the
name of a sandbox test card before asking the sandbox's tokenizer (DEMO_MODE only) for a
token. Either way the form posts a token, never a card number.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from clientarea.security.headers import DEFAULT_CSP

from . import gateways

V = TypeVar("V", bound=Callable[..., HttpResponse])

# Stripe's published Content-Security-Policy requirements for Stripe.js and the Payment
# Element (its integration security guide): the script, its frames (card fields, 3-D
# Secure) and its API. Nothing else of Stripe's (no Maps: no Address Element here).
STRIPE_CSP_SOURCES = {
    "script-src": ("https://js.stripe.com", "https://*.js.stripe.com"),
    "frame-src": ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"),
    "connect-src": ("https://api.stripe.com",),
}
STRIPE_JS_URL = "https://js.stripe.com/v3/"


def csp_with_sources(policy: str, extra: dict[str, tuple[str, ...]]) -> str:
    """`policy` with `extra` sources added to its directives (a directive it lacks
    starts from 'self')."""
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    for name, sources in extra.items():
        current = directives.setdefault(name, ["'self'"])
        current += [s for s in sources if s not in current]
    return "; ".join(" ".join([name, *values]) for name, values in directives.items())


def card_entry_csp(view: V) -> V:
    """Let the configured card processor's script and frames into this page (and only
    this page): Stripe's when Stripe takes the cards; nothing more for the sandbox."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if gateways.is_stripe() and response.get("Content-Type", "").startswith("text/html"):
            base = getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_CSP)
            response["Content-Security-Policy"] = csp_with_sources(base, STRIPE_CSP_SOURCES)
        return response

    return wrapper  # type: ignore[return-value]


def card_entry_context(amount: Decimal, currency: str, mode: str) -> dict[str, Any]:
    """The settings the page's card script reads (as JSON: no inline script). `mode` is
    Stripe's Elements mode: "payment" (with `amount`) or "setup" (saving a card)."""
    gateway = gateways.card_gateway()
    if gateway is None:
        return {"gateway": ""}
    if gateways.is_stripe():
        from .stripe_gateway import StripeAmountError, to_minor

        config: dict[str, Any] = {
            "gateway": "stripe",
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "mode": mode,
            "currency": currency.lower(),
        }
        if mode == "payment":
            try:
                config["amount"] = to_minor(amount, currency)
            except StripeAmountError as exc:
                # A balance no card can pay (a fraction of a yen): no card form at all.
                return {"gateway": "", "unpayable": str(exc)}
        return {"gateway": "stripe", "config": config, "script_url": STRIPE_JS_URL}
    year = timezone.localdate().year
    return {
        "gateway": "sandbox",
        "months": range(1, 13),
        "years": range(year, year + 16),
        "config": {
            "gateway": "sandbox",
            # Public test numbers only: the script sends the sandbox a card's name.
            "cards": {card.number: name for name, card in gateways.SANDBOX_CARDS.items()},
            "tokenizer_url": reverse("billing:sandbox_tokenize") if settings.DEMO_MODE else "",
        },
        "test_cards": gateways.SANDBOX_CARDS,
    }
