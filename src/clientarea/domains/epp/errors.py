"""EPP result codes (RFC 5730 section 3) as the outside-call errors of ``core.outside``.

A code the customer's request can cause becomes a clear sentence, OutsideRefused with the
code kept in ``.code``: the registry answered no, so nothing changed. The registry's own
<msg> is added as detail (shortened, and never with our password in it).
"""

from __future__ import annotations

from clientarea.core.outside import (
    OutsideError,
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
)

# What each refusal means for the customer. {detail} is the registry's own words.
REFUSALS: dict[int, str] = {
    2003: "The registry needs a value that was not given",
    2004: "The registry does not accept one of the values (out of its allowed range)",
    2005: "The registry does not accept the form of one of the values",
    2104: "The registry could not bill this operation to the registrar's account",
    2105: "The registry does not allow this domain to be renewed now",
    2106: "The registry does not allow this domain to be transferred now",
    2201: "The registry does not let us manage this domain (it is not sponsored by us)",
    2202: "The registry did not accept the authorization information",
    2300: "A transfer of this domain is pending at the registry, so it cannot be changed now",
    2302: "That already exists at the registry",
    2303: "The registry does not know that object (the domain or a nameserver host)",
    2304: "The domain's status at the registry does not allow this change",
    2305: "The registry refused because of an association with another object",
    2306: "The registry's policy does not allow this value",
    2308: "The registry's data policy does not allow this change",
}

# Codes that mean our request was wrong (a bug of ours, not the customer's doing).
OUR_MISTAKE = frozenset({2000, 2001, 2002, 2100, 2101, 2102, 2103, 2307})

LOGIN_REFUSED_MESSAGE = (
    "The registry refused our credentials, so nothing was changed. The provider's staff "
    "have been told."
)


def redact(text: str, *secrets: str) -> str:
    """`text` with every secret replaced, and kept short (it may be shown or logged)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return " ".join(text.split())[:200]


def refusal(
    code: int, message: str = "", *, transform: bool, secrets: tuple[str, ...] = ()
) -> OutsideError:
    """The error for a failed EPP command answered with `code`. `transform` says whether
    the command changes something (update, renew, create) or only reads."""
    detail = redact(message, *secrets)
    suffix = f" (registry: {detail})" if detail else ""
    if code in REFUSALS:
        return OutsideRefused(f"{REFUSALS[code]}; nothing was changed{suffix}.", code=str(code))
    if code == 2400:
        # The registry's own failure. A read changed nothing; a change may have been
        # half-made on their side, so it is checked with the registry later.
        if transform:
            return OutsideUncertain(
                "The registry reported an internal error; the change will be checked with "
                "the registry."
            )
        return OutsideUnavailable("The registry reported an internal error; nothing was changed.")
    if code in (2200, 2501):
        return login_refused(code)
    if code in OUR_MISTAKE:
        return OutsideRefused(
            f"The registry could not process the request; nothing was changed{suffix}. "
            "The provider's staff have been told.",
            code=str(code),
        )
    return OutsideRefused(
        f"The registry refused the request; nothing was changed{suffix}.", code=str(code)
    )


def login_refused(code: int) -> OutsideUnavailable:
    """Login failed (2200 authentication error, 2001/2002 at login, 25xx): the registry
    did not let us in, so nothing was sent. For staff, the caller logs it."""
    if code == 2502:
        return OutsideUnavailable(
            "The registry has too many sessions open for us; nothing was changed. Try again "
            "in a few minutes."
        )
    return OutsideUnavailable(LOGIN_REFUSED_MESSAGE)
