"""The errors the services of identity and access raise, each with a message the
user should read."""

from __future__ import annotations


class AccessError(Exception):
    """A request the policy refuses for a reason the user should read."""


class InvitationError(Exception):
    """An invitation cannot be sent, resent, cancelled or accepted; the message says why."""


class ContactError(Exception):
    """A contact change the policy refuses; the message says why."""
