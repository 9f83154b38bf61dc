"""The channel table: every email the client area sends, and who may receive and read it.

The rule: what a person can learn or receive through any channel is exactly what their
grant shows them on a page. This module states it for email, as data, the way
``access_table`` states it for routes:

- ``EMAILS``: every email template, its kind, and to whom it is addressed;
- ``RECEIVES``: for each recipient role, the kinds of an account's email it may be sent;
- ``READS``: for each viewer role, the entries of Email History it may open.

The tables are written out by hand, not derived from the policy, so that the tests in
``acceptance/test_channel_matrix.py`` compare two independent statements: they send every
email with every role present and assert who received it, and open Email History as every
role and assert what it lists. ``manage.py access_table --write`` renders them into
``docs/access.md`` next to the routes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kinds (accounts.permissions.EmailKind), spelt out so that this table stays data.
GENERAL, INVOICE, SUPPORT, PRODUCT, DOMAIN = "general", "invoice", "support", "product", "domain"
SECURITY, PERSONAL = "security", "personal"
ACCOUNT_KINDS = (GENERAL, INVOICE, SUPPORT, PRODUCT, DOMAIN)

# To whom an email is addressed (before the grant filters it):
OWNER = "owner"  # the account's owner
OWNER_FALLBACK = "owner, when the named person may not receive it"
CONTACTS = "contacts"  # confirmed secondary contacts opted in to the kind
NAMED = "named person"  # the person who acted (payer, ticket opener), while entitled
ADDRESSEE = "addressee"  # the one person a personal email is about
# The provider's support inbox (settings.SUPPORT_STAFF_EMAIL): not the account's email,
# kept with no account, so nobody of the account receives or reads it.
STAFF = "support staff"


@dataclass(frozen=True)
class EmailRoute:
    template: str
    kind: str
    to: tuple[str, ...]
    when: str


EMAILS: tuple[EmailRoute, ...] = (
    # account news: owner, contacts, entitled named people
    EmailRoute("notifications/email/notice", GENERAL, (OWNER, CONTACTS), "a notice to the account"),
    EmailRoute("billing/email/invoice_created", INVOICE, (OWNER, CONTACTS), "an invoice is issued"),
    EmailRoute(
        "billing/email/payment_receipt",
        INVOICE,
        (OWNER, CONTACTS, NAMED),
        "a payment is recorded (the payer is named)",
    ),
    EmailRoute(
        "support/email/ticket_opened", SUPPORT, (NAMED,), "a ticket is opened (to its opener)"
    ),
    EmailRoute(
        "support/email/staff_reply",
        SUPPORT,
        (NAMED, OWNER_FALLBACK, CONTACTS),
        "staff answer a ticket (its opener is named)",
    ),
    # to the provider's support staff, never to anyone of the account
    EmailRoute(
        "support/email/staff_new_ticket",
        SUPPORT,
        (STAFF,),
        "someone of the account opens a ticket",
    ),
    EmailRoute(
        "support/email/staff_customer_reply",
        SUPPORT,
        (STAFF,),
        "someone of the account replies to a ticket",
    ),
    # owner-only security notices
    EmailRoute(
        "hosting/email/password_event",
        SECURITY,
        (OWNER,),
        "a sub-account reveals or changes a control-panel password",
    ),
    EmailRoute(
        "hosting/email/panel_login",
        SECURITY,
        (OWNER,),
        "a sub-account logs in to cPanel with Log in to cPanel",
    ),
    EmailRoute("accounts/email/invitation_accepted", SECURITY, (OWNER,), "an invited person joins"),
    EmailRoute(
        "accounts/email/account_close_requested",
        SECURITY,
        (OWNER,),
        "the owner asks to close the account",
    ),
    # ownership transfer: the account's news, to its owner at that moment and contacts
    EmailRoute(
        "accounts/email/ownership_transfer_notice",
        GENERAL,
        (OWNER, CONTACTS),
        "an ownership transfer is started, accepted (to the new owner), cancelled or expires",
    ),
    # personal: to the one person they are about
    EmailRoute("accounts/email/invitation", PERSONAL, (ADDRESSEE,), "the owner invites someone"),
    EmailRoute(
        "accounts/email/access_granted", PERSONAL, (ADDRESSEE,), "staff or the owner grant access"
    ),
    EmailRoute(
        "accounts/email/access_changed", PERSONAL, (ADDRESSEE,), "the owner edits permissions"
    ),
    EmailRoute(
        "accounts/email/access_ended",
        PERSONAL,
        (ADDRESSEE,),
        "access is revoked or expires, or the account is closed",
    ),
    EmailRoute(
        "accounts/email/ownership_transfer_offer",
        PERSONAL,
        (ADDRESSEE,),
        "the owner offers the account to someone (the link, to them)",
    ),
    EmailRoute(
        "accounts/email/ownership_transfer_outcome",
        PERSONAL,
        (ADDRESSEE,),
        "a transfer is accepted (to the former owner), cancelled or expires (to the recipient)",
    ),
    EmailRoute(
        "accounts/email/account_closed",
        PERSONAL,
        (ADDRESSEE,),
        "staff confirm the closing (to the owner: nobody can select the account now)",
    ),
    EmailRoute(
        "accounts/email/contact_confirm",
        PERSONAL,
        (ADDRESSEE,),
        "a contact is added or its address changes (to that address)",
    ),
    EmailRoute("accounts/email/password_reset", PERSONAL, (ADDRESSEE,), "a reset is requested"),
    EmailRoute(
        "api/email/token_created",
        PERSONAL,
        (ADDRESSEE,),
        "a person creates an API token (to its creator; never the secret)",
    ),
    EmailRoute("security/email/two_factor_enabled", PERSONAL, (ADDRESSEE,), "two-factor turned on"),
    EmailRoute(
        "security/email/two_factor_disabled", PERSONAL, (ADDRESSEE,), "two-factor turned off"
    ),
    EmailRoute(
        "security/email/recovery_codes_replaced",
        PERSONAL,
        (ADDRESSEE,),
        "new recovery codes are made",
    ),
    EmailRoute(
        "security/email/password_changed", PERSONAL, (ADDRESSEE,), "the login password changes"
    ),
    EmailRoute(
        "security/email/email_change_requested",
        PERSONAL,
        (ADDRESSEE,),
        "an email change is asked for (to the old address)",
    ),
    EmailRoute(
        "security/email/email_change_confirm",
        PERSONAL,
        (ADDRESSEE,),
        "an email change is asked for (to the new address)",
    ),
    EmailRoute(
        "security/email/email_changed",
        PERSONAL,
        (ADDRESSEE,),
        "the login email changed (to the old address)",
    ),
    EmailRoute(
        "security/email/staff_two_factor_disabled",
        PERSONAL,
        (ADDRESSEE,),
        "staff turn off a customer's two-factor",
    ),
    EmailRoute(
        "security/email/staff_sessions_ended",
        PERSONAL,
        (ADDRESSEE,),
        "staff end a customer's sessions",
    ),
    EmailRoute(
        "security/email/staff_email_changed",
        PERSONAL,
        (ADDRESSEE,),
        "staff change a customer's login email (to the old address)",
    ),
    EmailRoute(
        "security/email/staff_password_changed",
        PERSONAL,
        (ADDRESSEE,),
        "staff set a customer's password",
    ),
    EmailRoute(
        "security/email/login_attempts",
        PERSONAL,
        (ADDRESSEE,),
        "failed logins or codes from unknown browsers lock them out (once per lockout)",
    ),
)

BY_TEMPLATE: dict[str, EmailRoute] = {e.template: e for e in EMAILS}

# Recipient roles: the owner, a person holding exactly one permission, All Permissions,
# access that ended, and secondary contacts.
MEMBER_ROLES = (
    "profile",
    "contacts",
    "products",
    "manageproducts",
    "domains",
    "managedomains",
    "invoices",
    "tickets",
    "emails",
)
PERSON_ROLES = ("owner", *(f"only:{code}" for code in MEMBER_ROLES), "all", "revoked", "expired")
CONTACT_ROLES = (*(f"contact:{kind}" for kind in ACCOUNT_KINDS), "contact:unconfirmed")

# The kinds of an account's email each role may be sent (personal emails aside: those go
# to their addressee, whoever that is). General news carries nothing a page would hide
# from anyone with access.
RECEIVES: dict[str, frozenset[str]] = {
    "owner": frozenset({GENERAL, INVOICE, SUPPORT, PRODUCT, DOMAIN, SECURITY}),
    "only:profile": frozenset({GENERAL}),
    "only:contacts": frozenset({GENERAL}),
    "only:products": frozenset({GENERAL, PRODUCT}),
    "only:manageproducts": frozenset({GENERAL, PRODUCT}),
    "only:domains": frozenset({GENERAL, DOMAIN}),
    "only:managedomains": frozenset({GENERAL, DOMAIN}),
    "only:invoices": frozenset({GENERAL, INVOICE}),
    "only:tickets": frozenset({GENERAL, SUPPORT}),
    "only:emails": frozenset({GENERAL}),
    "all": frozenset({GENERAL, INVOICE, SUPPORT, PRODUCT, DOMAIN}),
    "revoked": frozenset(),
    "expired": frozenset(),
    "contact:general": frozenset({GENERAL}),
    "contact:invoice": frozenset({INVOICE}),
    "contact:support": frozenset({SUPPORT}),
    "contact:product": frozenset({PRODUCT}),
    "contact:domain": frozenset({DOMAIN}),
    "contact:unconfirmed": frozenset(),
}

# Email History entries: one of each kind, plus a personal email to the viewer and one to
# someone else.
HISTORY_ENTRIES = (*ACCOUNT_KINDS, SECURITY, "personal:own", "personal:other")

# Viewer roles: Email History needs View Email History; with it, a person reads the kinds
# their grant covers. "no-emails" holds every other permission.
VIEWER_ROLES = (
    "owner",
    *(f"emails+{code}" for code in MEMBER_ROLES if code != "emails"),
    "only:emails",
    "all",
    "no-emails",
    "revoked",
    "expired",
)

READS: dict[str, frozenset[str]] = {
    "owner": frozenset({*ACCOUNT_KINDS, SECURITY, "personal:own"}),
    "emails+profile": frozenset({GENERAL, "personal:own"}),
    "emails+contacts": frozenset({GENERAL, "personal:own"}),
    "emails+products": frozenset({GENERAL, PRODUCT, "personal:own"}),
    "emails+manageproducts": frozenset({GENERAL, PRODUCT, "personal:own"}),
    "emails+domains": frozenset({GENERAL, DOMAIN, "personal:own"}),
    "emails+managedomains": frozenset({GENERAL, DOMAIN, "personal:own"}),
    "emails+invoices": frozenset({GENERAL, INVOICE, "personal:own"}),
    "emails+tickets": frozenset({GENERAL, SUPPORT, "personal:own"}),
    "only:emails": frozenset({GENERAL, "personal:own"}),
    "all": frozenset({*ACCOUNT_KINDS, "personal:own"}),
    "no-emails": frozenset(),
    "revoked": frozenset(),
    "expired": frozenset(),
}


def _tick(yes: bool) -> str:
    return "✓" if yes else "·"


def render_markdown() -> str:
    """The channel part of docs/access.md."""
    lines = [
        "## Emails and who receives them",
        "",
        "Generated from `src/clientarea/channel_table.py`; the channel matrix test sends",
        "each email with every role present and asserts who received it. The worker asks",
        "again just before sending: access that ended after an email was queued gets",
        "nothing (the email is marked *not sent*).",
        "",
        "| email | kind | addressed to | sent when |",
        "| --- | --- | --- | --- |",
    ]
    for e in EMAILS:
        lines.append(f"| `{e.template}` | {e.kind} | {', '.join(e.to)} | {e.when} |")
    kinds = (*ACCOUNT_KINDS, SECURITY)
    lines += [
        "",
        "Which kinds of an account's email each role may be sent (a named person or a",
        "contact receives a kind only with ✓; personal emails go to their addressee alone):",
        "",
        "| role | " + " | ".join(kinds) + " |",
        "| --- |" + " --- |" * len(kinds),
    ]
    for role in (*PERSON_ROLES, *CONTACT_ROLES):
        cells = " | ".join(_tick(k in RECEIVES[role]) for k in kinds)
        lines.append(f"| {role} | {cells} |")
    lines += [
        "",
        "## Email History: who reads what",
        "",
        "Anything not readable is neither listed nor opened (404, like another account's).",
        "",
        "| viewer | " + " | ".join(HISTORY_ENTRIES) + " |",
        "| --- |" + " --- |" * len(HISTORY_ENTRIES),
    ]
    for role in VIEWER_ROLES:
        cells = " | ".join(_tick(k in READS[role]) for k in HISTORY_ENTRIES)
        lines.append(f"| {role} | {cells} |")
    lines += [
        "",
        "A sub-account may give a secondary contact only the kinds it receives itself",
        "(the kinds outside its grant stay as the owner set them, and it cannot move such",
        "a contact to another address); a contact receives nothing until it confirms its",
        "address from the link sent to it. A kind a sub-account chose for a contact is sent",
        "only while that person's own access covers it; the owner saving the contact makes",
        "it the owner's choice. Email History shows a contact's address only to those who",
        "may see the contacts.",
        "",
        "The owner receives the kinds of account news they chose in Emails You Receive",
        "(invoice, support, product and domain news can be turned off; general news,",
        "security notices and personal emails always go); the worker asks again before",
        "sending. Notes to support staff go to the configured support address only: they",
        "carry no account, so no Email History lists them, whoever reads it.",
        "",
        "A sub-account limited to chosen services and domains (a resource scope) is sent,",
        "and reads in Email History, product and domain emails only about an item in its",
        "scope (each such email names the one service or domain it is about; one about",
        "none is not theirs). Support emails it reads only when sent to it, about no item",
        "or an item of its scope (each names its ticket's item); a token limited to chosen",
        "items reads as such a sub-account. The other kinds are account-wide. The worker's",
        "check before",
        "sending asks the scope too. Such a sub-account cannot give a contact the product",
        "or domain kinds, which would carry news of every item.",
        "",
    ]
    return "\n".join(lines)
