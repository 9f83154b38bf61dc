"""State-changing actions of identity and access. Each is one transaction that also
writes its audit event (and queues its email where one is due).

One module per concern; import from this package, never from its modules:

- ``profile``: users and accounts, created and their details changed
- ``memberships``: sub-accounts' access granted, changed, revoked, expired
- ``scopes``: a grant's resource scope checked against the account
- ``invitations``: invitations sent, resent, cancelled, accepted, expired
- ``contacts``: secondary contacts and the confirmation of their address
- ``errors``: the errors the services raise
- ``_common``: helpers the modules share (private)

Ownership transfer, closing an account and deleting one's login are in
``clientarea.accounts.ownership``; the owner's own emails in
``clientarea.accounts.owner_emails``.
"""

from ._common import _new_token as _new_token  # used by accounts.ownership (transfer links)
from .contacts import (
    CONTACT_FIELDS,
    CONTACT_IS_OWNER,
    CONTACT_NO_KINDS,
    contact_confirm,
    contact_confirmation_resend,
    contact_confirmation_url,
    contact_create,
    contact_delete,
    contact_for_token,
    contact_kinds_for,
    contact_update,
)
from .errors import (
    AccessError,
    AccessNotPermitted,
    AccessOutOfReach,
    ContactError,
    InvitationError,
)
from .invitations import (
    invitation_accept,
    invitation_accept_new_user,
    invitation_cancel,
    invitation_create,
    invitation_expire_due,
    invitation_for_token,
    invitation_resend,
    invitation_token_hash,
    invitation_url,
)
from .memberships import (
    UNCHANGED,
    membership_expire_due,
    membership_grant,
    membership_revoke,
    membership_update,
    scope_item_forget,
)
from .profile import (
    PROFILE_FIELDS,
    account_create,
    account_update_profile,
    user_create,
    user_update_profile,
)
from .scopes import scope_checked, scope_email_context, scope_within

__all__ = [
    "CONTACT_FIELDS",
    "CONTACT_IS_OWNER",
    "CONTACT_NO_KINDS",
    "PROFILE_FIELDS",
    "UNCHANGED",
    "AccessError",
    "AccessNotPermitted",
    "AccessOutOfReach",
    "ContactError",
    "InvitationError",
    "account_create",
    "account_update_profile",
    "contact_confirm",
    "contact_confirmation_resend",
    "contact_confirmation_url",
    "contact_create",
    "contact_delete",
    "contact_for_token",
    "contact_kinds_for",
    "contact_update",
    "invitation_accept",
    "invitation_accept_new_user",
    "invitation_cancel",
    "invitation_create",
    "invitation_expire_due",
    "invitation_for_token",
    "invitation_resend",
    "invitation_token_hash",
    "invitation_url",
    "membership_expire_due",
    "membership_grant",
    "membership_revoke",
    "membership_update",
    "scope_checked",
    "scope_email_context",
    "scope_item_forget",
    "scope_within",
    "user_create",
    "user_update_profile",
]
