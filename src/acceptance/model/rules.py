"""The actions of the model and their rules, each mirroring a service function of the
real app (cited in its docstring). An action is attempted by an actor who may not be
allowed to do it: the rule then raises ``Refused`` and the state stays as it was (the
app's transaction is rolled back).

People are 0, 1, 2; STAFF confirms closings; SYSTEM is the worker and the clock; a link's
holder acts through the link (the person it was sent to, or someone else who has it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from .catalogue import (
    ACCESS_TICKS,
    ACCOUNT_EMAIL_KINDS,
    CONTACT_KINDS,
    EVERYTHING,
    GRANTS,
    INVITATION_TICKS,
    PER_ITEM_EMAIL_KINDS,
    SCOPES,
    TOKEN_TICKS,
    TRANSFER_TICKS,
    expand,
    normalise,
    scope_intersect,
    scope_within,
)
from .reach import NO_FAULTS, Access, Faults, access_for, holds_users_power, token_grant
from .state import (
    ACCOUNTS,
    FORMER_OWNER_GRANT,
    NO_ONE,
    NO_TTL,
    NONE,
    USERS,
    Contact,
    Invite,
    Member,
    State,
    Token,
    Transfer,
    set_at,
    set_row,
)

STAFF = -2
SYSTEM = -3


class Action(NamedTuple):
    name: str
    actor: int  # a person, STAFF or SYSTEM
    account: int = -1
    target: int = -1  # a person the action is about
    arg: str = ""  # a grant, scope, kind or option

    def describe(self) -> str:
        who = {STAFF: "staff", SYSTEM: "system"}.get(self.actor, f"P{self.actor}")
        if self.name.startswith("api_"):
            who += "'s token"
        parts = [f"{who} {self.name}"]
        if self.account >= 0:
            parts.append(f"on A{self.account}")
        if self.target >= 0:
            parts.append(f"P{self.target}")
        if self.arg:
            parts.append(self.arg)
        return " ".join(parts)


class Refused(Exception):
    """The app refuses the action (an error message, a 403 or a 404)."""


# --- helpers ------------------------------------------------------------------------------


def _owner(s: State, a: int) -> int:
    return s.owners[a][0]


def _users_power(s: State, actor: int, a: int) -> None:
    """services._common._owner_checked for a person: the owner's access, account open."""
    if not holds_users_power(s, actor, a):
        raise Refused("Only the account owner can manage users and invitations.")


def _token_users_power(s: State, a: int, creator: int, faults: Faults) -> None:
    """_owner_checked for a token's access (TokenGrant.current, TokenGrant.holds_power)."""
    grant = token_grant(s, a, creator, faults)
    if grant is None or not grant.manages_users:
        raise Refused("This token does not carry the Users power.")


def _usable_member(s: State, a: int, u: int) -> bool:
    m = s.members[a][u]
    return bool(m) and m.status == "active" and (m.ttl == NO_TTL or m.ttl > 0)


def _void_tokens(s: State, a: int, creator: int, faults: Faults) -> State:
    """api.services.token_void_for_access_ended / token_void_for_ownership_moved."""
    t = s.tokens[a][creator]
    if not t or t.revoked or "token_outlives_creator" in faults:
        return s
    return s._replace(tokens=set_row(s.tokens, a, creator, t._replace(revoked=True)))


def _end_membership(s: State, a: int, u: int, status: str, faults: Faults) -> State:
    m = s.members[a][u]
    s = s._replace(
        members=set_row(s.members, a, u, m._replace(status=status, revoked_since_offer=True))
        if status == "revoked"
        else set_row(s.members, a, u, m._replace(status=status))
    )
    return _void_tokens(s, a, u, faults)  # access_ended -> api.receivers.on_access_ended


# --- invitations (accounts/services/invitations.py) -------------------------------------


def _invite(s: State, a: int, u: int, perms: tuple[str, ...]) -> State:
    """invitation_create after the owner check."""
    if s.closing[a] != "open":
        raise Refused("This account is being closed: it takes no new people.")
    if u in s.owners[a]:  # _refuse_if_already_has_access
        raise Refused("is the owner of this account")
    if _usable_member(s, a, u):
        raise Refused("already has access to this account")
    old = s.invites[a][u]
    if old and old.status == "pending" and old.ttl == 0:  # _expire_stale_invitations
        old = old._replace(status="expired")
    if old and old.status == "pending":
        raise Refused("already has a pending invitation")
    new = Invite("pending", perms, INVITATION_TICKS, old_link=bool(old))
    return s._replace(invites=set_row(s.invites, a, u, new))


def invite(s: State, act: Action, faults: Faults) -> State:
    """invitation_create: the owner invites person `target` with grant `arg`."""
    _users_power(s, act.actor, act.account)
    return _invite(s, act.account, act.target, GRANTS[act.arg])


def api_invite(s: State, act: Action, faults: Faults) -> State:
    """POST /api/v1/invitations with the token `actor` made (token:owner, then
    invitation_create with the token's access). The grant it gives stays within what the
    token carries (services._common._grant_within): its permissions, and its scope (an
    invitation is for every item, so a scoped token invites nobody)."""
    _token_users_power(s, act.account, act.actor, faults)
    grant = token_grant(s, act.account, act.actor, faults)
    assert grant is not None
    codes = GRANTS[act.arg]
    if not expand(codes) <= grant.access.perms:
        raise Refused("A grant can hold only permissions this token carries itself.")
    if grant.access.is_scoped:
        raise Refused("This token is limited to chosen services and domains.")
    return _invite(s, act.account, act.target, codes)


def _invitation(s: State, a: int, u: int) -> Invite:
    inv = s.invites[a][u]
    if not inv:
        raise Refused("No such invitation.")
    return inv


def resend(s: State, act: Action, faults: Faults) -> State:
    """invitation_resend: a new link valid 7 days; the old link stops working."""
    a, u = act.account, act.target
    inv = _invitation(s, a, u)
    _users_power(s, act.actor, a)
    if inv.status not in ("pending", "expired"):
        raise Refused(f"This invitation was {inv.status}; send a new one instead.")
    if u in s.owners[a] or _usable_member(s, a, u):
        raise Refused("already has access to this account")
    new = inv._replace(status="pending", ttl=INVITATION_TICKS, old_link=True)
    return s._replace(invites=set_row(s.invites, a, u, new))


def cancel(s: State, act: Action, faults: Faults) -> State:
    """invitation_cancel."""
    a, u = act.account, act.target
    inv = _invitation(s, a, u)
    _users_power(s, act.actor, a)
    if inv.status not in ("pending", "expired"):
        raise Refused(f"This invitation was already {inv.status}.")
    return s._replace(invites=set_row(s.invites, a, u, inv._replace(status="cancelled")))


def _check_open(inv: Invite) -> None:
    """invitations._check_open."""
    if inv.status == "pending" and inv.ttl == 0:
        raise Refused("This invitation has expired.")
    if inv.status != "pending":
        raise Refused(f"This invitation was {inv.status}.")


def _accept(s: State, a: int, invitee: int, user: int) -> State:
    """invitation_accept: `user` uses the current link of the invitation of `invitee`."""
    inv = _invitation(s, a, invitee)
    _check_open(inv)
    if not s.logins[user]:
        raise Refused("log in first")
    if user != invitee:
        raise Refused("This invitation was sent to a different email address.")
    if s.closing[a] != "open":
        raise Refused("This account is being closed: it takes no new people.")
    if user in s.owners[a]:
        raise Refused("You already own this account.")
    if _usable_member(s, a, user):
        raise Refused("You already have access to this account.")
    old = s.members[a][user]
    if old and old.status == "active":
        # membership_grant restoring an access past its expiry that the worker has not
        # recorded yet: it ended all the same, so its tokens end first (access_ended).
        s = _void_tokens(s, a, user, NO_FAULTS)
    # membership_grant: created, or restored with exactly the invitation's grant.
    member = Member(inv.perms, EVERYTHING, "active", NO_TTL, revoked_since_offer=False)
    s = s._replace(members=set_row(s.members, a, user, member))
    return s._replace(invites=set_row(s.invites, a, invitee, inv._replace(status="accepted")))


def accept(s: State, act: Action, faults: Faults) -> State:
    """invitation_accept: person `actor`, logged in, opens the link sent to `target`."""
    return _accept(s, act.account, act.target, act.actor)


def accept_new(s: State, act: Action, faults: Faults) -> State:
    """invitation_accept_new_user: the invitee, new to the site, sets a password."""
    a, u = act.account, act.target
    _check_open(_invitation(s, a, u))
    if s.logins[u]:
        raise Refused("You already have a login: log in with it to accept.")
    s = s._replace(logins=set_at(s.logins, u, True))  # user_create
    return _accept(s, a, u, u)


def accept_old_link(s: State, act: Action, faults: Faults) -> State:
    """invitation_accept with a link that was replaced (resent over, or an earlier
    invitation's): invitation_for_token finds no invitation with its hash."""
    inv = _invitation(s, act.account, act.target)
    if "resend_keeps_old_link" in faults and inv.old_link and inv.status == "pending":
        return _accept(s, act.account, act.target, act.target)
    raise Refused("This invitation link is not valid.")


# --- memberships (accounts/services/memberships.py) -------------------------------------


def _membership(s: State, a: int, u: int) -> Member:
    m = s.members[a][u]
    if not m:
        raise Refused("No such user.")
    return m


def _update(s: State, a: int, u: int, m: Member, new: Member) -> State:
    """membership_update after the owner check: refused for revoked access and for an
    expiry in the past; a change (or a swept expiry) makes it active again. An access
    past its expiry that the worker has not recorded yet ends first (access_ended voids
    its tokens), and the person's live token keeps only what the new grant allows, for
    good (access_changed -> api.services.token_narrow_to_grant)."""
    if m.status == "revoked":
        raise Refused("This person's access was revoked; invite them again to restore it.")
    if new.ttl == 0:
        raise Refused("The access expiry date must be in the future.")
    if new == m:
        return s
    if m.status == "active" and m.ttl == 0:
        s = _void_tokens(s, a, u, NO_FAULTS)
    s = s._replace(members=set_row(s.members, a, u, new._replace(status="active")))
    t = s.tokens[a][u]
    if t and not t.revoked:
        granted = expand(new.perms)
        narrowed = t._replace(
            perms=tuple(sorted(expand(t.perms) & granted)),
            scope=scope_intersect(t.scope, new.scope),
        )
        s = s._replace(tokens=set_row(s.tokens, a, u, narrowed))
    return s


def edit(s: State, act: Action, faults: Faults) -> State:
    """membership_update from Edit User: new permissions, same scope and expiry."""
    a, u = act.account, act.target
    m = _membership(s, a, u)
    _users_power(s, act.actor, a)
    return _update(s, a, u, m, m._replace(perms=GRANTS[act.arg]))


def set_scope(s: State, act: Action, faults: Faults) -> State:
    """membership_update with a new scope (scope_checked: the account's own items)."""
    a, u = act.account, act.target
    m = _membership(s, a, u)
    _users_power(s, act.actor, a)
    return _update(s, a, u, m, m._replace(scope=SCOPES[act.arg]))


def set_expiry(s: State, act: Action, faults: Faults) -> State:
    """membership_update with a new expiry: "soon" (one tick) or "none"."""
    a, u = act.account, act.target
    m = _membership(s, a, u)
    _users_power(s, act.actor, a)
    ttl = ACCESS_TICKS if act.arg == "soon" else NO_TTL
    return _update(s, a, u, m, m._replace(ttl=ttl))


def _revoke(s: State, a: int, u: int, faults: Faults, check: Callable[[], None]) -> State:
    """membership_revoke: already revoked is a no-op (before the check, as the app)."""
    m = _membership(s, a, u)
    if m.status == "revoked":
        return s
    check()
    if "revoke_noop" in faults:
        return s
    if "revoke_in_every_account" in faults:
        for b in ACCOUNTS:
            if b != a and _usable_member(s, b, u):
                s = _end_membership(s, b, u, "revoked", faults)
    return _end_membership(s, a, u, "revoked", faults)


def revoke(s: State, act: Action, faults: Faults) -> State:
    """membership_revoke by a person (Revoke Access)."""
    return _revoke(
        s, act.account, act.target, faults, lambda: _users_power(s, act.actor, act.account)
    )


def api_revoke(s: State, act: Action, faults: Faults) -> State:
    """DELETE /api/v1/users/{id} with the token `actor` made. The view's rule
    (token_owner_rule: a live token carrying the Users power) is asked before the
    service, so a dead token is refused even where revoking would change nothing."""
    _token_users_power(s, act.account, act.actor, faults)
    return _revoke(
        s,
        act.account,
        act.target,
        faults,
        lambda: _token_users_power(s, act.account, act.actor, faults),
    )


# --- ownership (accounts/ownership.py) ---------------------------------------------------


def transfer_start(s: State, act: Action, faults: Faults) -> State:
    """ownership_transfer_start: the owner offers the account to `target`; `arg` says
    whether the former owner stays as a sub-account ("stays") or leaves."""
    a, to = act.account, act.target
    if not holds_users_power(s, act.actor, a):  # _require_power(TRANSFER_OWNERSHIP)
        raise Refused("Only the account owner can transfer the account.")
    if s.closing[a] != "open":
        raise Refused("This account is being closed: it cannot be transferred.")
    if to in s.owners[a]:
        raise Refused("You already own this account: choose someone else.")
    old = s.transfers[a]
    if old and old.status == "pending" and old.ttl != 0:  # else _expire_if_stale
        raise Refused("A transfer is already pending: cancel it first.")
    new = Transfer("pending", to, act.arg == "stays", TRANSFER_TICKS, old_link=bool(old))
    # A revocation before this offer does not withdraw it (revoked_at < created_at).
    members = tuple(m._replace(revoked_since_offer=False) if m else m for m in s.members[a])
    return s._replace(transfers=set_at(s.transfers, a, new), members=set_at(s.members, a, members))


def transfer_cancel(s: State, act: Action, faults: Faults) -> State:
    """ownership_transfer_cancel by a person."""
    a = act.account
    t = s.transfers[a]
    if not t:
        raise Refused("No such transfer.")
    if not holds_users_power(s, act.actor, a):
        raise Refused("Only the account owner can transfer the account.")
    if t.status != "pending":
        raise Refused(f"This transfer was already {t.status}.")
    return s._replace(transfers=set_at(s.transfers, a, t._replace(status="cancelled")))


def transfer_accept(s: State, act: Action, faults: Faults) -> State:
    """ownership_transfer_accept: person `actor`, logged in, opens the offer's link."""
    a, user = act.account, act.actor
    t = s.transfers[a]
    if not t:
        raise Refused("This transfer link is not valid.")
    if t.status == "pending" and t.ttl == 0:
        raise Refused("This transfer offer has expired.")
    if t.status != "pending":
        raise Refused(f"This transfer offer was {t.status}.")
    if user != t.to:
        raise Refused("This offer was sent to a different email address.")
    if not s.logins[user]:
        raise Refused("This login cannot accept the offer.")
    if s.closing[a] != "open":
        raise Refused("This account is being closed: it cannot be transferred.")
    if user in s.owners[a]:
        raise Refused("You already own this account.")
    m = s.members[a][user]
    if m and m.status == "revoked" and m.revoked_since_offer:
        raise Refused("The owner removed your access after making this offer.")
    # _move_ownership: one UPDATE of the owner; the new owner's membership deleted; the
    # former owner a sub-account with All Permissions, or gone; ownership_transferred
    # voids the former owner's tokens.
    if m and m.status == "active" and m.ttl == 0:
        # Past its expiry, not yet recorded by the worker: its tokens end first
        # (_move_ownership sends access_ended before deleting the membership).
        s = _void_tokens(s, a, user, NO_FAULTS)
    former = _owner(s, a)
    owners = (former, user) if "transfer_two_owners" in faults else (user,)
    members = set_row(s.members, a, user, NONE)
    if t.stays:
        member = Member(FORMER_OWNER_GRANT, EVERYTHING, "active", NO_TTL, False)
        members = set_row(members, a, former, member)
    s = s._replace(
        owners=set_at(s.owners, a, tuple(sorted(owners))),
        members=members,
        transfers=set_at(s.transfers, a, t._replace(status="accepted")),
    )
    return _void_tokens(s, a, former, faults)


def transfer_accept_old_link(s: State, act: Action, faults: Faults) -> State:
    """ownership_transfer_accept with an earlier offer's link: no transfer has its hash
    any more... (its offer is finished: accepted, cancelled or expired)."""
    raise Refused("This transfer offer was already finished.")


def close_request(s: State, act: Action, faults: Faults) -> State:
    """account_close_request (no invoice is unpaid in the model)."""
    a = act.account
    if not holds_users_power(s, act.actor, a):  # _require_power(CLOSE_ACCOUNT)
        raise Refused("Only the account owner can close the account.")
    if s.closing[a] != "open":
        raise Refused("You already asked to close this account.")
    t = s.transfers[a]
    if t and t.status == "pending":
        if t.ttl != 0:
            raise Refused("A transfer of this account is pending: cancel it first.")
        s = s._replace(transfers=set_at(s.transfers, a, t._replace(status="expired")))
    return s._replace(closing=set_at(s.closing, a, "requested"))


def close_confirm(s: State, act: Action, faults: Faults) -> State:
    """account_close_confirm by staff: the pending transfer and invitations cancelled,
    usable access revoked (tokens voided), the account closed."""
    a = act.account
    if s.closing[a] != "requested":
        raise Refused("The owner has not asked to close this account.")
    t = s.transfers[a]
    if t and t.status == "pending":
        s = s._replace(transfers=set_at(s.transfers, a, t._replace(status="cancelled")))
    for u in USERS:
        inv = s.invites[a][u]
        if inv and inv.status == "pending":
            s = s._replace(invites=set_row(s.invites, a, u, inv._replace(status="cancelled")))
        if _usable_member(s, a, u):
            s = _end_membership(s, a, u, "revoked", faults)
    return s._replace(closing=set_at(s.closing, a, "closed"))


# --- tokens (api/services.py) ------------------------------------------------------------


def token_create(s: State, act: Action, faults: Faults) -> State:
    """token_create: `arg` is "<grant>/<scope>[/users]", the grant "mine" being the
    creator's own permissions; a token carries at most the creator's grant."""
    a, c = act.account, act.actor
    grant, scope_arg, *users = act.arg.split("/")
    access = access_for(s, c, a)
    if access is None:
        raise Refused("You no longer have access to this account.")
    manages_users = bool(users)
    if manages_users and not access.is_owner:
        raise Refused("Only the account's owner can let a token manage users.")
    codes = normalise(access.perms) if grant == "mine" else GRANTS[grant]
    if not expand(codes) <= access.perms:
        raise Refused("A token can carry only permissions you hold yourself.")
    scope = SCOPES[scope_arg]
    if access.is_scoped:
        if scope == EVERYTHING:
            scope = access.scope
        elif not scope_within(scope, access.scope):
            raise Refused("A token can reach only services and domains you reach yourself.")
    old = s.tokens[a][c]
    if old and not old.revoked and old.ttl != 0:
        raise Refused("(model) one live token per person and account")
    token = Token(codes, scope, access.is_owner, manages_users, False, TOKEN_TICKS, False)
    return s._replace(tokens=set_row(s.tokens, a, c, token))


def token_revoke(s: State, act: Action, faults: Faults) -> State:
    """token_revoke: its creator (while they have access) or the owner (_may_revoke)."""
    a, c = act.account, act.target
    t = s.tokens[a][c]
    if not t:
        raise Refused("No such token.")
    mine = act.actor == c and access_for(s, c, a) is not None
    if not (holds_users_power(s, act.actor, a) or mine):
        raise Refused("No such token.")
    if t.revoked:
        return s
    return s._replace(tokens=set_row(s.tokens, a, c, t._replace(revoked=True)))


# --- contacts (accounts/services/contacts.py) -------------------------------------------


def _contact_kinds_grantable(access: Access) -> frozenset[str]:
    """policy.contact_kinds_grantable."""
    kinds = access.email_kinds & frozenset(ACCOUNT_EMAIL_KINDS)
    if access.is_scoped:
        kinds -= PER_ITEM_EMAIL_KINDS
    return kinds


def contact_add(s: State, act: Action, faults: Faults) -> State:
    """contact_create: someone holding `contacts` adds a contact receiving `arg`."""
    a = act.account
    access = access_for(s, act.actor, a)
    if access is None:
        raise Refused("No such account.")
    if not access.has("contacts"):
        raise Refused("You do not have permission to manage this account's contacts.")
    if act.arg not in _contact_kinds_grantable(access):
        raise Refused("You can only choose emails you can read yourself.")
    if s.contacts[a]:
        raise Refused("(model) one contact per account")
    sponsor = NO_ONE if access.is_owner else act.actor
    contact = Contact(act.arg, False, sponsor, INVITATION_TICKS)
    return s._replace(contacts=set_at(s.contacts, a, contact))


def contact_confirm(s: State, act: Action, faults: Faults) -> State:
    """contact_confirm: the address's holder opens the link while it is fresh (as long
    as an invitation's: contact_for_token)."""
    c = s.contacts[act.account]
    if not c or c.confirmed or c.ttl == 0:
        raise Refused("This confirmation link is not valid, was already used or has expired.")
    confirmed = c._replace(confirmed=True, ttl=NO_TTL)
    return s._replace(contacts=set_at(s.contacts, act.account, confirmed))


# --- the clock and the worker -------------------------------------------------------------


def _tick_ttl(ttl: int) -> int:
    return ttl - 1 if ttl > 0 else ttl


def tick(s: State, act: Action, faults: Faults) -> State:
    """Time passes: every deadline one tick nearer (access stops at its expiry: the
    policy compares expires_at with the clock on every request)."""
    return s._replace(
        members=tuple(
            tuple(m._replace(ttl=_tick_ttl(m.ttl)) if m else m for m in row) for row in s.members
        ),
        invites=tuple(
            tuple(i._replace(ttl=_tick_ttl(i.ttl)) if i else i for i in row) for row in s.invites
        ),
        transfers=tuple(t._replace(ttl=_tick_ttl(t.ttl)) if t else t for t in s.transfers),
        tokens=tuple(
            tuple(t._replace(ttl=_tick_ttl(t.ttl)) if t else t for t in row) for row in s.tokens
        ),
        contacts=tuple(c._replace(ttl=_tick_ttl(c.ttl)) if c else c for c in s.contacts),
    )


def worker(s: State, act: Action, faults: Faults) -> State:
    """The worker's housekeeping: membership_expire_due (records the expiry and voids the
    tokens), invitation_expire_due, ownership_transfer_expire_due."""
    before = s
    for a in ACCOUNTS:
        for u in USERS:
            m = s.members[a][u]
            if m and m.status == "active" and m.ttl == 0:
                s = _end_membership(s, a, u, "expired", faults)
            inv = s.invites[a][u]
            if inv and inv.status == "pending" and inv.ttl == 0:
                s = s._replace(invites=set_row(s.invites, a, u, inv._replace(status="expired")))
        t = s.transfers[a]
        if t and t.status == "pending" and t.ttl == 0:
            s = s._replace(transfers=set_at(s.transfers, a, t._replace(status="expired")))
    if s == before:
        raise Refused("(nothing due)")
    return s


def login_elsewhere(s: State, act: Action, faults: Faults) -> State:
    """Person `actor` gets a login through an account outside the exploration (another
    account's invitation, accepted as a new user: user_create). A login is the only thing
    an account's actions change outside that account (see ``compose``), so this one step
    stands for everything the accounts not explored can do to the one that is."""
    if s.logins[act.actor]:
        raise Refused("You already have a login: log in with it to accept.")
    return s._replace(logins=set_at(s.logins, act.actor, True))


RULES: dict[str, Callable[[State, Action, Faults], State]] = {
    "invite": invite,
    "api_invite": api_invite,
    "resend": resend,
    "cancel": cancel,
    "accept": accept,
    "accept_new": accept_new,
    "accept_old_link": accept_old_link,
    "edit": edit,
    "set_scope": set_scope,
    "set_expiry": set_expiry,
    "revoke": revoke,
    "api_revoke": api_revoke,
    "transfer_start": transfer_start,
    "transfer_cancel": transfer_cancel,
    "transfer_accept": transfer_accept,
    "transfer_accept_old_link": transfer_accept_old_link,
    "close_request": close_request,
    "close_confirm": close_confirm,
    "token_create": token_create,
    "token_revoke": token_revoke,
    "contact_add": contact_add,
    "contact_confirm": contact_confirm,
    "tick": tick,
    "worker": worker,
    "login_elsewhere": login_elsewhere,
}


# The real app's entry point for each action: what the conformance step replays (the
# service function; the page or API endpoint over it for the HTTP replay).
SERVICE_OF: dict[str, str] = {
    "invite": "accounts.services.invitation_create (accounts:user_invite)",
    "api_invite": "accounts.services.invitation_create (api:invitation_list POST)",
    "resend": "accounts.services.invitation_resend (accounts:invitation_resend)",
    "cancel": "accounts.services.invitation_cancel (accounts:invitation_cancel)",
    "accept": "accounts.services.invitation_accept (accounts:invitation_page)",
    "accept_new": "accounts.services.invitation_accept_new_user (accounts:invitation_page)",
    "accept_old_link": "accounts.services.invitation_accept with the replaced token",
    "edit": "accounts.services.membership_update (accounts:user_edit)",
    "set_scope": "accounts.services.membership_update scope= (accounts:user_edit)",
    "set_expiry": "accounts.services.membership_update expires_at= (accounts:user_edit)",
    "revoke": "accounts.services.membership_revoke (accounts:user_revoke)",
    "api_revoke": "accounts.services.membership_revoke (api:user_detail DELETE)",
    "transfer_start": "accounts.ownership.ownership_transfer_start",
    "transfer_cancel": "accounts.ownership.ownership_transfer_cancel",
    "transfer_accept": "accounts.ownership.ownership_transfer_accept",
    "transfer_accept_old_link": "accounts.ownership.ownership_transfer_accept, old token",
    "close_request": "accounts.ownership.account_close_request (accounts:account_close)",
    "close_confirm": "accounts.ownership.account_close_confirm (staff)",
    "token_create": "api.services.token_create (api_tokens:create)",
    "token_revoke": "api.services.token_revoke (api_tokens:revoke)",
    "contact_add": "accounts.services.contact_create (accounts:contact_add)",
    "contact_confirm": "accounts.services.contact_confirm (accounts:contact_confirm)",
    "tick": "the clock moves on (time-machine / a later `now`)",
    "worker": "membership_expire_due, invitation_expire_due, ownership_transfer_expire_due",
    "login_elsewhere": "accounts.services.invitation_accept_new_user on another account",
}


class Outcome(NamedTuple):
    ok: bool
    state: State  # the state after (the same state when refused)
    reason: str = ""


def apply(s: State, act: Action, faults: Faults = NO_FAULTS) -> Outcome:
    try:
        return Outcome(True, RULES[act.name](s, act, faults))
    except Refused as exc:
        return Outcome(False, s, str(exc))


# --- which actions to try in a state ------------------------------------------------------

INVITE_GRANTS = ("TE", "ALL")
EDIT_GRANTS = ("INV", "MP")
SCOPE_CHOICES = ("all", "service")
# A token with the Users power invites only within what it carries (a scoped one invites
# nobody: an invitation is for every item), so the owner's Users-power token is for
# every item; scoped tokens come from scoped people ("mine/all" takes their scope).
TOKEN_CHOICES = ("mine/all", "ALL/all/users")


def actions(
    s: State, active: tuple[int, ...] = ACCOUNTS, *, elsewhere: bool = False
) -> Iterator[Action]:
    """Every action worth trying in `s` on the `active` accounts: each by every person
    with a login (allowed or not), about every person or record it could name. Actions
    that name a record the state does not hold (a membership, an invitation, a token)
    are not tried: their page would have nothing to act on. `elsewhere`: a person without
    a login may get one through an account outside the exploration (``login_elsewhere``)."""
    people = [u for u in USERS if s.logins[u]]
    yield Action("tick", SYSTEM)
    yield Action("worker", SYSTEM)
    if elsewhere:
        for u in USERS:
            if not s.logins[u]:
                yield Action("login_elsewhere", u)
    for a in active:
        for actor in people:
            for u in USERS:
                for g in INVITE_GRANTS:
                    yield Action("invite", actor, a, u, g)
            if s.transfers[a]:
                yield Action("transfer_cancel", actor, a)
            yield Action("close_request", actor, a)
            for arg in TOKEN_CHOICES:
                yield Action("token_create", actor, a, -1, arg)
            for kind in CONTACT_KINDS:
                yield Action("contact_add", actor, a, -1, kind)
        yield Action("close_confirm", STAFF, a)
        if s.contacts[a] and not s.contacts[a].confirmed:
            yield Action("contact_confirm", SYSTEM, a)
        for u in USERS:
            inv = s.invites[a][u]
            if inv:
                for actor in people:
                    yield Action("resend", actor, a, u)
                    yield Action("cancel", actor, a, u)
                    yield Action("accept", actor, a, u)
                yield Action("accept_new", u, a, u)
                if inv.old_link:
                    yield Action("accept_old_link", u, a, u)
            if s.members[a][u]:
                for actor in people:
                    for g in EDIT_GRANTS:
                        yield Action("edit", actor, a, u, g)
                    for sc in SCOPE_CHOICES:
                        yield Action("set_scope", actor, a, u, sc)
                    yield Action("set_expiry", actor, a, u, "soon")
                    yield Action("set_expiry", actor, a, u, "none")
                    yield Action("revoke", actor, a, u)
            if s.tokens[a][u]:
                for actor in people:
                    yield Action("token_revoke", actor, a, u)
                if s.tokens[a][u].manages_users:
                    for v in USERS:
                        yield Action("api_invite", u, a, v, "TE")
                        if s.members[a][v]:
                            yield Action("api_revoke", u, a, v)
        t = s.transfers[a]
        if t:
            for actor in people:
                yield Action("transfer_accept", actor, a)
            if t.old_link:
                yield Action("transfer_accept_old_link", t.to, a)
        for actor in people:
            for u in people:  # the offer is accepted with a login
                for arg in ("stays", "leaves"):
                    yield Action("transfer_start", actor, a, u, arg)
