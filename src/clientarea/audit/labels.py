"""Audit actions in words, for the owner's activity log."""

ACTION_LABELS: dict[str, str] = {
    "account.created": "Account created",
    "account.profile_changed": "Account details changed",
    "account.switched": "Switched to this account",
    "user.profile_changed": "Profile changed",
    "membership.granted": "Access granted",
    "membership.permissions_changed": "Permissions changed",
    "membership.revoked": "Access revoked",
    "membership.expired": "Access expired",
    "invitation.sent": "Invitation sent",
    "invitation.resent": "Invitation resent",
    "invitation.cancelled": "Invitation cancelled",
    "invitation.accepted": "Invitation accepted",
    "invitation.expired": "Invitation expired",
    "contact.added": "Contact added",
    "contact.changed": "Contact changed",
    "contact.removed": "Contact removed",
    "api_token.created": "API token created",
    "api_token.revoked": "API token revoked",
    "api_token.voided": "API token ended with its creator's access or ownership",
    "api_token.scope_item_removed": "API token: a service or domain left its scope",
}


def action_label(action: str) -> str:
    """Known actions in words; any other app's action as readable text."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    return action.replace("_", " ").replace(".", ": ", 1).capitalize()
