"""Links into another account: an emailed or bookmarked link to an object of another
account the person can use opens it there.

A page asked for an object (`account_object_or_404`) that is not the current account's,
or a page the current access does not allow, or an object page while no account is
selected yet: ``account_reaching`` looks for the one account of the person's own whose
access reaches that object. The page itself decides, as it would after a Switch Account:
it is asked with that account's access (the same policy: permission, resource scope, and
whatever the page's own queryset hides), as a probe that stops at the page's object
lookup. Only if the lookup finds the object is the account switched (by the middleware,
recorded like a Switch Account) and the page shown. Anything else stays the same 404 or
403 as before, with no switch, so nobody learns that an object of an account they cannot
use exists.

Only GET and HEAD are followed: nothing is changed in an account the person did not
choose.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import ResolverMatch

from clientarea.security.services import account_requires_two_factor
from clientarea.security.twofactor import user_has_two_factor

from .policy import (
    Access,
    AccessRule,
    NotInAccount,
    ObjectFound,
    UserRequest,
    access_for,
    accounts_for,
    object_probe,
)

SAFE_METHODS = ("GET", "HEAD")


def _usable(request: UserRequest, rule: AccessRule, account_id: int) -> Access | None:
    """The person's access to `account_id` if the page's rule allows it and the account
    does not require a two-factor setup the person lacks."""
    access = access_for(request.user, account_id)
    if access is None or not access.allows(rule):
        return None
    if account_requires_two_factor(account_id) and not user_has_two_factor(request.user):
        return None
    return access


def _ask_page(request: UserRequest, match: ResolverMatch, access: Access) -> bool | NotInAccount:
    """Would the page show its object with `access`? It is run as a probe: it stops at its
    object lookup (``object_probe``), before it calls anything outside or changes
    anything, and with a message store of its own. True if the lookup found the object,
    the `NotInAccount` it raised (which names what was looked up), or False."""
    saved_access = request.access
    store = getattr(request, "_messages", None)
    if store is not None:
        request._messages = type(store)(request)  # type: ignore[attr-defined]
    answer: bool | NotInAccount = False
    try:
        request.access = access
        with object_probe():
            response = match.func(request, *match.args, **match.kwargs)
        # A page that looks up no object: not an object page. Its response is dropped
        # unsent and not closed (closing sends request_finished in mid-request).
        del response
    except ObjectFound:
        answer = True
    except NotInAccount as missing:
        answer = missing
    except (Http404, PermissionDenied):
        answer = False
    finally:
        request.access = saved_access
        if store is not None:
            request._messages = store  # type: ignore[attr-defined]
    return answer


def account_reaching(
    request: UserRequest, rule: AccessRule, missing: NotInAccount | None = None
) -> Access | None:
    """The person's access to another account whose page answers this request, or None.

    `missing` is what the page looked up in vain in the current account: only the
    accounts holding such an object are asked. Without it (the current access does not
    allow the page, or no account is selected yet), the page is asked in the first other
    account of the person's that allows it; the object it looks up there names the
    account to ask next."""
    match = request.resolver_match
    if request.method not in SAFE_METHODS or match is None or not match.kwargs:
        return None  # list pages and actions never switch by themselves
    user = request.user
    if not user.is_authenticated:
        return None
    current = request.access.account.pk if request.access is not None else None
    asked: set[int] = {current} if current is not None else set()
    if missing is None:
        first = next(_allowed_elsewhere(request, rule, skip=asked), None)
        if first is None:
            return None
        answer = _ask_page(request, match, first)
        if answer is True:
            return first
        if not isinstance(answer, NotInAccount):
            return None
        missing = answer
        asked.add(first.account.pk)
    for account_id in sorted(missing.holder_ids() - asked):
        access = _usable(request, rule, account_id)
        if access is not None and _ask_page(request, match, access) is True:
            return access
    return None


def _allowed_elsewhere(request: UserRequest, rule: AccessRule, skip: set[int]) -> Iterator[Access]:
    for account_id in accounts_for(request.user).values_list("pk", flat=True):
        if account_id in skip:
            continue
        access = _usable(request, rule, account_id)
        if access is not None:
            yield access
