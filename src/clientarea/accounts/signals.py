"""Signals of identity and access that later features hook into."""

from django.dispatch import Signal

# Sent (inside the transaction) when a sub-account's access to an account ends, by
# revocation or expiry, with `membership` and `reason` ("revoked" or "expired"). Anything
# else that grants access to the account on that person's behalf (API tokens, for
# example) must be voided by a receiver, so access ends everywhere at once.
access_ended = Signal()

# Sent (inside the transaction) when a sub-account's grant is changed by
# ``membership_update``, with `membership` as it is now. What acts on that person's
# behalf (API tokens) keeps at most the new grant from then on: widening it again later
# gives nothing back to what was made under the narrower one.
access_changed = Signal()

# Sent (inside the transaction) when an account's ownership moves, with `account` (its
# owner already the new one), `former_owner`, `new_owner`, `former_owner_stays` and
# `keep_payment_methods`. Billing removes the stored payment methods unless they are kept
# (accounts never imports billing).
ownership_transferred = Signal()

# Sent (inside the transaction) when staff confirm the closing of an account, with
# `account` and `staff`. Domain apps wind down what the account holds (auto-renew off).
account_closed = Signal()
