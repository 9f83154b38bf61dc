"""The errors the services of identity and access raise, each with a message the
user should read."""

from __future__ import annotations

from ..policy import NotPermitted, OutOfReach


class AccessError(Exception):
    """A request the policy refuses for a reason the user should read."""


class InvitationError(Exception):
    """An invitation cannot be sent, resent, cancelled or accepted; the message says why."""


class ContactError(Exception):
    """A contact change the policy refuses; the message says why."""


class AccessOutOfReach(OutOfReach, AccessError):
    """The actor's access does not reach the object (another account's, or the access
    ended): the policy's 404 on every entry point, and still an ``AccessError`` for the
    pages that show its message."""


class AccessNotPermitted(NotPermitted, AccessError):
    """The actor's access reaches the object but lacks what the action needs (a
    permission, or an owner-only power): the policy's 403, with the page's sentence."""

    def __init__(self, perm: str, message: str) -> None:
        super().__init__(perm)
        self.args = (message,)
        self.message = message

    def __str__(self) -> str:
        return self.message
