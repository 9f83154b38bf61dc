"""Personal access tokens: create, revoke, void, and authenticate a request with one.

Every function checks the policy itself: what the creator may give is read from their
current access, not from the caller; who may revoke a token is decided here; and a token
is only ever as strong as its creator's access at the moment it is used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.policy import (
    Access,
    OutOfReach,
    access_for,
    access_query,
    access_with,
    is_owner,
    scope_intersect,
)
from clientarea.accounts.scope import Scope, scope_from_json, scope_to_json
from clientarea.accounts.services import scope_checked
from clientarea.audit.services import audit_record
from clientarea.core.validators import validate_single_line
from clientarea.notifications.services import email_send_to_person
from clientarea.security.services import (
    TWO_FACTOR_NAMES,
    two_factor_gate_fields,
    two_factor_missing,
)

from . import tokens
from .models import ApiToken

DEFAULT_LIFETIME = timedelta(days=90)
# "At most one year": a date chosen on the page lasts to the end of that day in the
# person's time zone, so a year and the rest of that day.
MAX_LIFETIME = timedelta(days=366)
MAX_NETWORKS = 20
MAX_LIVE_TOKENS = 50  # per person and account
# The last use is written at most this often (or when the address changes), so a busy
# script does not turn every read into a write.
LAST_USE_RESOLUTION = timedelta(seconds=60)


class TokenError(Exception):
    """A token cannot be created or changed; the message says why, for the person."""


@dataclass(frozen=True)
class TokenRefused(Exception):
    """A request's token does not authenticate: `code` for scripts, `detail` for people."""

    code: str
    detail: str


@dataclass(frozen=True)
class TokenGrant(Access):
    """A token's access for one request (its permissions and scope intersected with its
    creator's grant). Asked again by a service function before it acts
    (``policy.access_require``), it holds only while the token itself still works:
    revoked, expired, its creator's access ended or narrowed, ownership moved, or the
    account's two-factor rule no longer met, and it reaches nothing or less."""

    token_id: int = 0
    # The owner's Users power, for a token its creator made as the owner and chose so
    # for (``ApiToken.manages_users``), while they are the owner. No other owner power.
    manages_users: bool = False

    def holds_power(self, power: permissions.OwnerPower) -> bool:
        return (
            self.manages_users
            and power is permissions.OwnerPower.MANAGE_USERS
            and self.account.closed_at is None
        )

    def current(self, now: Any = None) -> Access | None:
        now = now or timezone.now()
        token = (
            ApiToken.objects.select_related("created_by", "account")
            .filter(pk=self.token_id, account_id=self.account.pk)
            .first()
        )
        if token is None or token.created_by_id != self.user.pk:
            return None
        try:
            creator_access = _token_checked(token, now)
        except TokenRefused:
            return None
        narrowed = super().current(now)
        if narrowed is None:
            return None
        return TokenGrant(
            narrowed.user,
            narrowed.account,
            narrowed.membership,
            False,
            narrowed.permissions,
            narrowed.scope,
            token_id=token.pk,
            manages_users=_manages_users(token, creator_access),
        )


@dataclass(frozen=True)
class TokenAccess:
    """An authenticated token and what it may do right now: its own grant, intersected
    with its creator's current access (never more than either)."""

    token: ApiToken
    access: Access


# --- checks -------------------------------------------------------------------------------


def networks_clean(entries: Iterable[Any]) -> list[str]:
    """The allowed networks as canonical CIDR strings ("203.0.113.0/24"; a single
    address is its /32 or /128). A bad entry is refused with a message naming it."""
    out: list[str] = []
    for entry in entries:
        text = str(entry).strip() if isinstance(entry, str) else ""
        if not text:
            if isinstance(entry, str):
                continue
            raise TokenError("Allowed networks must be IP addresses or CIDR ranges.")
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            shown = text if len(text) <= 60 and text.isprintable() else "One entry"
            raise TokenError(
                f"{shown} is not an IP address or CIDR range (for example 203.0.113.0/24 "
                "or 2001:db8::/48)."
            ) from None
        if str(network) not in out:
            out.append(str(network))
    if len(out) > MAX_NETWORKS:
        raise TokenError(f"A token can list at most {MAX_NETWORKS} networks.")
    return out


def _scope_within(wanted: Scope, limit: Scope) -> bool:
    return all(set(ids) <= set(limit.get(kind, frozenset())) for kind, ids in wanted.items())


def _creator_access(actor: User, account: Account) -> Access:
    access = access_for(actor, account.pk)
    if access is None:
        raise TokenError("You no longer have access to this account.")
    return access


def _granted_codes(access: Access) -> frozenset[str]:
    return permissions.ALL_CODES if access.is_owner else access.permissions


def _name_clean(name: Any) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise TokenError("Give the token a name, e.g. what will use it.")
    if len(text) > 100:
        raise TokenError("A token's name is at most 100 characters.")
    try:
        validate_single_line(text)
    except ValidationError as exc:
        raise TokenError(" ".join(exc.messages)) from None
    return text


def _codes_clean(codes: Any, granted: frozenset[str]) -> list[str]:
    if not isinstance(codes, list | tuple | set | frozenset):
        raise TokenError("Choose the permissions the token carries.")
    unknown = sorted(
        str(c)[:40] for c in codes if not isinstance(c, str) or c not in permissions.BY_CODE
    )
    if unknown:
        raise TokenError(f"Unknown permission: {', '.join(unknown)}.")
    wanted = permissions.normalise(list(codes))
    if not wanted:
        raise TokenError("Choose at least one permission for the token.")
    beyond = [c for c in wanted if c not in granted]
    if beyond:
        labels = ", ".join(permissions.BY_CODE[c].label for c in beyond)
        raise TokenError(
            f"A token can carry only permissions you hold yourself; you do not hold: {labels}."
        )
    return wanted


def _expiry_clean(expires_at: Any, now: datetime) -> datetime:
    if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
        raise TokenError("Choose when the token expires: every token expires.")
    if expires_at <= now:
        raise TokenError("Choose an expiry in the future.")
    if expires_at > now + MAX_LIFETIME:
        raise TokenError("A token lasts at most one year: choose an earlier expiry.")
    return expires_at


# --- create, revoke, void -------------------------------------------------------------------


@sensitive_variables("secret")
@transaction.atomic
def token_create(
    *,
    account: Account,
    actor: User,
    name: str,
    permission_codes: Iterable[str],
    expires_at: datetime,
    scope: Mapping[str, Iterable[int]] | None = None,
    allowed_networks: Iterable[str] = (),
    manages_users: bool = False,
    request: HttpRequest | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `actor` on `account`, carrying at most the actor's own grant
    (permissions and scope, read here from their current access), and return it with its
    secret: the only time the secret exists outside the caller's hands. Refused with
    ``TokenError`` (nothing stored, nothing sent) for anything the rules forbid.
    `manages_users` (the Users power: users and invitations through the API) is the
    owner's alone to give, and only to a token they make as the owner."""
    now = timezone.now()
    access = _creator_access(actor, account)
    if manages_users is not False and (manages_users is not True or not access.is_owner):
        raise TokenError("Only the account's owner can let a token manage users and invitations.")
    clean_name = _name_clean(name)
    codes = _codes_clean(
        list(permission_codes) if not isinstance(permission_codes, str) else permission_codes,
        _granted_codes(access),
    )
    stored_scope = scope_checked(account=account, scope=scope, error=TokenError)
    if access.scope is not None:
        # A scoped creator's token is scoped too: to what they chose within their scope,
        # or to their whole scope as it is today (it never widens with theirs later).
        if stored_scope is None:
            stored_scope = scope_to_json(access.scope)
        elif not _scope_within({k: frozenset(v) for k, v in stored_scope.items()}, access.scope):
            raise TokenError("A token can reach only services and domains you reach yourself.")
    networks = networks_clean(allowed_networks)
    until = _expiry_clean(expires_at, now)
    live = ApiToken.objects.live(now).filter(account=account, created_by=actor).count()
    if live >= MAX_LIVE_TOKENS:
        raise TokenError(
            f"You have {live} active tokens on this account: revoke one you no longer use first."
        )
    secret = tokens.secret_new()
    token = ApiToken.objects.create(
        account=account,
        created_by=actor,
        created_as_owner=access.is_owner,
        manages_users=manages_users,
        name=clean_name,
        secret_hash=tokens.secret_hash(secret),
        hint=tokens.secret_hint(secret),
        permissions=codes,
        scope=stored_scope,
        allowed_networks=networks,
        expires_at=until,
        created_at=now,
    )
    audit_record(
        action="api_token.created",
        actor=actor,
        account=account,
        target=token,
        target_label=clean_name,
        changes={
            "permissions": codes,
            "scope": stored_scope,
            "expires_at": until.isoformat(),
            "allowed_networks": networks,
            "manages_users": manages_users,
        },
        request=request,
    )
    email_send_to_person(
        to_email=actor.email,
        to_name=actor.get_full_name(),
        to_user=actor,
        template="api/email/token_created",
        context={
            "account": account,
            "token": token,
            "creator": actor,
            "tokens_url": reverse("api_tokens:list"),
        },
        account=account,
    )
    return token, secret


def _may_revoke(actor: User, token: ApiToken) -> bool:
    """The creator (while they still have access) or the account's owner."""
    if is_owner(actor, token.account) and token.account.closed_at is None:
        return True
    return token.created_by_id == actor.pk and access_for(actor, token.account_id) is not None


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: User, request: HttpRequest | None = None) -> ApiToken:
    """Revoke a token at once: its next request is a 401. Only its creator or the
    account's owner may; anyone else gets the 404 of a token they cannot see."""
    locked = (
        ApiToken.objects.select_for_update(of=("self",))
        .select_related("account", "created_by")
        .filter(pk=token.pk)
        .first()
    )
    if locked is None or not _may_revoke(actor, locked):
        raise OutOfReach("No such token.")
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    locked.revoked_by = actor
    locked.end_reason = ApiToken.EndReason.REVOKED
    locked.save(update_fields=["revoked_at", "revoked_by", "end_reason"])
    audit_record(
        action="api_token.revoked",
        actor=actor,
        account=locked.account,
        target=locked,
        target_label=locked.name,
        changes={"created_by": locked.created_by.email},
        request=request,
    )
    return locked


def _void(tokens_qs: Any, reason: ApiToken.EndReason) -> int:
    """End tokens because their creator's footing went (inside the caller's transaction);
    each is audited as the system's doing."""
    now = timezone.now()
    count = 0
    for token in tokens_qs.select_for_update(of=("self",)).select_related("account"):
        token.revoked_at = now
        token.end_reason = reason
        token.save(update_fields=["revoked_at", "end_reason"])
        audit_record(
            action="api_token.voided",
            account=token.account,
            target=token,
            target_label=token.name,
            changes={"reason": reason.value, "created_by": token.created_by_id},
        )
        count += 1
    return count


def token_void_for_access_ended(*, membership: Membership) -> int:
    """A sub-account's access ended (revoked, expired): every token they made for that
    account dies with it."""
    return _void(
        ApiToken.objects.filter(
            account_id=membership.account_id, created_by_id=membership.user_id, revoked_at=None
        ),
        ApiToken.EndReason.ACCESS_ENDED,
    )


def token_void_for_ownership_moved(*, account: Account, former_owner: User) -> int:
    """Ownership moved away from a person: the tokens they made for the account die, even
    if they stay on as a sub-account (a new token is theirs to make, under that grant)."""
    return _void(
        ApiToken.objects.filter(account=account, created_by=former_owner, revoked_at=None),
        ApiToken.EndReason.OWNERSHIP_MOVED,
    )


def token_narrow_to_grant(*, membership: Membership) -> int:
    """A sub-account's grant changed: each live token they made for that account keeps
    what it carries only as far as the new grant goes (permissions and scope), stored, so
    a later widening of the grant gives nothing back ("the intersection from then on").
    Called inside ``membership_update``'s transaction. Returns how many tokens changed."""
    granted = permissions.expand(membership.permissions)
    grant_scope = scope_from_json(membership.scope)
    changed = 0
    rows = ApiToken.objects.select_for_update(of=("self",)).filter(
        account_id=membership.account_id,
        created_by_id=membership.user_id,
        revoked_at__isnull=True,
    )
    for token in rows.select_related("account"):
        kept = [code for code in permissions.normalise(token.permissions) if code in granted]
        scope = scope_to_json(scope_intersect(token.scope_items, grant_scope))
        if kept == permissions.normalise(token.permissions) and scope == scope_to_json(
            token.scope_items
        ):
            continue
        audit_record(
            action="api_token.narrowed",
            account=token.account,
            target=token,
            target_label=token.name,
            changes={"permissions": [token.permissions, kept], "scope": [token.scope, scope]},
        )
        token.permissions, token.scope = kept, scope
        token.save(update_fields=["permissions", "scope"])
        changed += 1
    return changed


@transaction.atomic
def token_scope_item_forget(*, kind: str, obj_id: int, account_id: int) -> int:
    """A service or domain left `account_id`: take it out of every token scope of that
    account that named it, as ``accounts.services.scope_item_forget`` does for grants, so
    it is not reached again if it ever comes back. Returns how many tokens changed."""
    changed = 0
    rows = ApiToken.objects.select_for_update(of=("self",)).filter(
        account_id=account_id, scope__isnull=False, revoked_at__isnull=True
    )
    for token in rows.select_related("account"):
        before = token.scope_items or {}
        if obj_id not in before.get(kind, frozenset()):
            continue
        after = {k: set(v) - ({obj_id} if k == kind else set()) for k, v in before.items()}
        stored = scope_to_json(after)
        audit_record(
            action="api_token.scope_item_removed",
            account=token.account,
            target=token,
            target_label=token.name,
            changes={"scope": [token.scope, stored], "removed": {kind: obj_id}},
        )
        token.scope = stored
        token.save(update_fields=["scope"])
        changed += 1
    return changed


# --- authentication -------------------------------------------------------------------------


def _address_allowed(token: ApiToken, ip: str | None) -> bool:
    networks = token.allowed_networks if isinstance(token.allowed_networks, list) else []
    if not networks:
        return True
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in networks:
        try:
            network = ipaddress.ip_network(str(entry), strict=False)
        except ValueError:
            continue
        if address.version == network.version and address in network:
            return True
    return False


DEAD = "The token is not valid: it was revoked or expired, or its creator's access ended."


@sensitive_variables("secret")
def token_authenticate(*, secret: str, ip: str | None, now: datetime | None = None) -> TokenAccess:
    """The token's access for this request, or ``TokenRefused``. Everything is decided
    now, from the database as it is: the token's own state, its creator's current access
    (revoked, expired, removed, closed account, ownership moved), the account's two-factor
    rule, and the client's address. What it may do is its own permissions and scope
    intersected with its creator's current ones."""
    now = now or timezone.now()
    if not tokens.secret_well_formed(secret):
        raise TokenRefused("token_malformed", "The token is not a valid personal access token.")
    token = (
        ApiToken.objects.select_related("created_by", "account")
        .filter(secret_hash=tokens.secret_hash(secret))
        .first()
    )
    if token is None:
        raise TokenRefused("token_unknown", DEAD)
    creator_access = _token_checked(token, now)
    if not _address_allowed(token, ip):
        raise TokenRefused(
            "address_not_allowed", "The token may not be used from this network address."
        )
    carried = token.permission_codes & _granted_codes(creator_access)
    access = TokenGrant(
        user=token.created_by,
        account=creator_access.account,
        membership=creator_access.membership,
        # A token never holds the owner-only powers, whoever made it.
        is_owner=False,
        permissions=frozenset(carried),
        scope=scope_intersect(token.scope_items, creator_access.scope),
        token_id=token.pk,
        manages_users=_manages_users(token, creator_access),
    )
    _note_use(token, ip, now)
    return TokenAccess(token=token, access=access)


def _manages_users(token: ApiToken, creator_access: Access) -> bool:
    """The Users power: chosen at creation by its creator as the owner, and they are
    the owner still (a token made as owner dies anyway when ownership moves)."""
    return token.manages_users and token.created_as_owner and creator_access.is_owner


# A token's creator's access and the account's two-factor rule, in one prepared query.
TOKEN_ACCESS = access_query(
    also=lambda user_id, account_id, now: two_factor_gate_fields(user_id, account_id),
    also_names=TWO_FACTOR_NAMES,
)


def _token_checked(token: ApiToken, now: datetime) -> Access:
    """The token's own state and its creator's footing, as the database has them now:
    the creator's current access, or ``TokenRefused`` saying why the token is dead."""
    if token.revoked_at is not None:
        raise TokenRefused("token_revoked", "The token was revoked.")
    if token.expires_at <= now:
        raise TokenRefused("token_expired", "The token expired.")
    creator = token.created_by
    # The creator's access and the account's two-factor rule: one query, every time.
    creator_access, also = access_with(creator, token.account_id, now, query=TOKEN_ACCESS)
    if creator_access is None or also is None:
        raise TokenRefused("creator_access_ended", "The token's creator no longer has access.")
    if token.created_as_owner and not creator_access.is_owner:
        raise TokenRefused("ownership_moved", "The account changed owner since the token was made.")
    if two_factor_missing(also):
        raise TokenRefused(
            "two_factor_required",
            "This account requires two-factor authentication, and the token's creator has "
            "it off: the token works again once they turn it on.",
        )
    return creator_access


def _note_use(token: ApiToken, ip: str | None, now: datetime) -> None:
    recent = token.last_used_at is not None and now - token.last_used_at < LAST_USE_RESOLUTION
    if recent and token.last_used_ip == ip:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    token.last_used_at, token.last_used_ip = now, ip
