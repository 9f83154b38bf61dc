"""Signals of identity and access that later features hook into."""

from django.dispatch import Signal

# Sent (inside the transaction) when a sub-account's access to an account ends, by
# revocation or expiry, with `membership` and `reason` ("revoked" or "expired"). Anything
# else that grants access to the account on that person's behalf (API tokens, for
# example) must be voided by a receiver, so access ends everywhere at once.
access_ended = Signal()
