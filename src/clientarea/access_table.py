"""The access table: every route of the client area and who may use it.

This is data, checked against the code by ``acceptance/test_access_table.py`` (a route
missing here, a row naming a route that does not exist, or a view whose declared rule
differs from its row all fail the build) and rendered to ``docs/access.md`` by
``manage.py access_table --write`` (CI runs ``--check`` so the page never goes stale).

``rule`` is the view's declared access rule: ``public``, ``login`` (any logged-in user,
no account needed), ``account`` (any usable access to the current account), ``owner``,
or ``permission:<code>`` from the catalogue; API endpoints (``api:``) declare ``token``
(any live personal access token of the account) or ``token:<code>`` (a token carrying
that permission, intersected with its creator's current grant). ``object_param`` names
the URL argument that carries an id of the account's own objects (another account's id
answers 404).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    name: str
    methods: tuple[str, ...]
    rule: str
    object_param: str | None = None
    note: str = ""

    @property
    def is_public(self) -> bool:
        return self.rule == "public"

    @property
    def permission(self) -> str | None:
        return self.rule.split(":", 1)[1] if self.rule.startswith("permission:") else None

    @property
    def is_api(self) -> bool:
        return self.name.startswith("api:")


GET = ("GET",)
POST = ("POST",)
PUT = ("PUT",)
GET_POST = ("GET", "POST")
PATCH = ("PATCH",)
DELETE = ("DELETE",)

# The API's endpoints by area (their views: clientarea/api/views_<area>.py), joined into
# ROUTES below. A row's rule is ``token`` or ``token:<permission>``; ``token:owner`` is a
# token whose creator is the account's owner (and still is).
API_BILLING_ROUTES: tuple[Route, ...] = (
    Route(
        "api:invoice_pdf",
        GET,
        "token:invoices",
        object_param="pk",
        note="GET /api/v1/invoices/{id}/pdf",
    ),
    Route(
        "api:invoice_pay",
        POST,
        "token:invoices",
        object_param="pk",
        note="POST /api/v1/invoices/{id}/pay (Idempotency-Key header required)",
    ),
)
API_SUPPORT_ROUTES: tuple[Route, ...] = (
    Route(
        "api:ticket_list",
        GET_POST,
        "token:tickets",
        note="GET /api/v1/tickets (as the page lists them); POST opens one (JSON or "
        "multipart with attachments; about a service or domain the token reaches)",
    ),
    Route(
        "api:ticket_detail",
        GET,
        "token:tickets",
        object_param="pk",
        note="GET /api/v1/tickets/{id}: the thread, oldest first, with its attachments",
    ),
    Route(
        "api:ticket_reply",
        POST,
        "token:tickets",
        object_param="pk",
        note="POST /api/v1/tickets/{id}/replies (JSON or multipart); reopens a closed ticket",
    ),
    Route(
        "api:ticket_close",
        POST,
        "token:tickets",
        object_param="pk",
        note="POST /api/v1/tickets/{id}/close",
    ),
    Route(
        "api:ticket_attachment",
        GET,
        "token:tickets",
        object_param="pk",
        note="GET /api/v1/tickets/attachments/{id}: the file, as the page serves it",
    ),
)
API_PEOPLE_ROUTES: tuple[Route, ...] = (
    Route(
        "api:account_update",
        PATCH,
        "token:profile",
        note="PATCH /api/v1/account: the page's checks, audited",
    ),
    Route("api:contact_list", GET_POST, "token:contacts", note="GET, POST /api/v1/contacts"),
    Route(
        "api:contact_detail",
        (*GET, *PATCH, *DELETE),
        "token:contacts",
        object_param="pk",
        note="GET, PATCH, DELETE /api/v1/contacts/{id}",
    ),
    Route(
        "api:contact_confirmation",
        POST,
        "token:contacts",
        object_param="pk",
        note="POST /api/v1/contacts/{id}/confirmation: a new link to the address",
    ),
    Route("api:email_list", GET, "token:emails", note="GET /api/v1/emails"),
    Route(
        "api:email_detail",
        GET,
        "token:emails",
        object_param="pk",
        note="GET /api/v1/emails/{id}: one the access does not read answers 404",
    ),
    Route("api:user_list", GET, "token:owner", note="GET /api/v1/users"),
    Route(
        "api:user_detail",
        (*PATCH, *DELETE),
        "token:owner",
        object_param="pk",
        note="PATCH (permissions, scope, expiry), DELETE (revoke) /api/v1/users/{id}",
    ),
    Route(
        "api:invitation_list",
        GET_POST,
        "token:owner",
        note="GET, POST /api/v1/invitations: never a link or secret",
    ),
    Route(
        "api:invitation_detail",
        DELETE,
        "token:owner",
        object_param="pk",
        note="DELETE /api/v1/invitations/{id}: cancel",
    ),
    Route(
        "api:invitation_resend",
        POST,
        "token:owner",
        object_param="pk",
        note="POST /api/v1/invitations/{id}/resend",
    ),
)

ROUTES: tuple[Route, ...] = (
    # identity
    Route("accounts:login", GET_POST, "public"),
    Route("accounts:logout", POST, "public"),
    Route("accounts:password_reset", GET_POST, "public"),
    Route("accounts:password_reset_done", GET, "public"),
    Route("accounts:password_reset_confirm", GET_POST, "public", note="signed link"),
    Route("accounts:password_reset_complete", GET, "public"),
    Route("accounts:select_account", GET_POST, "login", note="Switch Account"),
    Route("accounts:access_removed", GET, "login"),
    Route("accounts:profile", GET_POST, "login"),
    Route("accounts:confirm_password", GET_POST, "login"),
    Route("accounts:delete_login", GET_POST, "login", note="Delete My Login"),
    Route("accounts:account_profile", GET_POST, "permission:profile"),
    Route(
        "accounts:invitation_accept",
        GET,
        "public",
        note="single-use invitation link: keeps its token in the session, redirects",
    ),
    Route("accounts:invitation_page", GET_POST, "public", note="the invitation link's page"),
    # User Management: owner only
    Route("accounts:users", GET, "owner", note="User Management"),
    Route("accounts:user_invite", GET_POST, "owner", note="Invite a New User"),
    Route("accounts:user_edit", GET_POST, "owner", object_param="membership_id"),
    Route(
        "accounts:user_revoke",
        GET_POST,
        "owner",
        object_param="membership_id",
        note="Revoke Access",
    ),
    Route("accounts:invitation_resend", POST, "owner", object_param="invitation_id"),
    Route("accounts:invitation_cancel", GET_POST, "owner", object_param="invitation_id"),
    Route("audit:activity", GET, "owner", note="Activity Log"),
    Route("audit:activity_export", GET, "owner", note="Export CSV of the Activity Log"),
    # Transfer Ownership and Close Account: owner only
    Route("accounts:ownership_transfer", GET_POST, "owner", note="Transfer Ownership"),
    Route(
        "accounts:ownership_transfer_cancel",
        POST,
        "owner",
        object_param="transfer_id",
        note="Cancel Transfer",
    ),
    Route(
        "accounts:ownership_transfer_link",
        GET,
        "public",
        note="single-use transfer link: keeps its token in the session, redirects",
    ),
    Route(
        "accounts:ownership_transfer_page",
        GET_POST,
        "public",
        note="the transfer link's page (Accept Ownership)",
    ),
    Route("accounts:account_close", GET_POST, "owner", note="Close Account"),
    Route("security:require_two_factor", POST, "owner"),
    # contacts and email history
    Route("accounts:contacts", GET, "permission:contacts"),
    Route("accounts:owner_emails", GET_POST, "owner", note="Emails You Receive"),
    Route("accounts:contact_add", GET_POST, "permission:contacts"),
    Route("accounts:contact_edit", GET_POST, "permission:contacts", object_param="contact_id"),
    Route("accounts:contact_remove", GET_POST, "permission:contacts", object_param="contact_id"),
    Route(
        "accounts:contact_confirmation_resend",
        POST,
        "permission:contacts",
        object_param="contact_id",
    ),
    Route("accounts:contact_confirm_link", GET, "public", note="single-use contact link"),
    Route("accounts:contact_confirm", GET_POST, "public", note="token held in the session"),
    Route("notifications:history", GET, "permission:emails"),
    Route("notifications:history_detail", GET, "permission:emails", object_param="email_id"),
    # the user's own security settings
    Route("security:security", GET, "login", note="Security"),
    Route("security:two_factor_setup", GET_POST, "login"),
    Route("security:two_factor_disable", POST, "login"),
    Route("security:recovery_codes", POST, "login"),
    Route("security:session_end", POST, "login", note="the user's own session id"),
    Route("security:sessions_end_others", POST, "login"),
    Route("security:password_change", GET_POST, "login"),
    Route("security:email_change", GET_POST, "login"),
    Route(
        "security:email_change_confirm",
        GET,
        "public",
        note="signed link: keeps its token in the session, redirects",
    ),
    Route("security:email_change_confirm_page", GET_POST, "public", note="the link's page"),
    # shell
    Route("core:dashboard", GET, "account"),
    # billing
    Route("billing:invoice_list", GET, "permission:invoices"),
    Route("billing:invoice_detail", GET, "permission:invoices", object_param="pk"),
    Route("billing:invoice_pdf", GET, "permission:invoices", object_param="pk"),
    Route("billing:invoice_pay", GET_POST, "permission:invoices", object_param="pk"),
    Route(
        "billing:invoice_pay_return",
        GET,
        "permission:invoices",
        object_param="pk",
        note="back from 3-D Secure: the processor is asked, the query only names the payment",
    ),
    Route(
        "billing:invoice_pay_cancel",
        POST,
        "permission:invoices",
        object_param="pk",
        note="give up on a payment left waiting at the card holder's bank",
    ),
    Route(
        "billing:pay_several",
        POST,
        "permission:invoices",
        note="pay several invoices at once: one combined invoice",
    ),
    Route("billing:add_funds", GET_POST, "permission:invoices", note="Add Funds"),
    Route("billing:payment_methods", GET, "permission:invoices"),
    Route("billing:payment_method_add", GET_POST, "owner"),
    Route("billing:payment_method_return", GET, "owner", note="back from 3-D Secure"),
    Route(
        "billing:sandbox_tokenize",
        POST,
        "permission:invoices",
        note="the sandbox's tokenizer: DEMO_MODE only (404 otherwise); a card's name, no number",
    ),
    Route("billing:payment_method_remove", POST, "owner", object_param="pk"),
    Route(
        "billing:stripe_webhook",
        POST,
        "public",
        note="Stripe's events: signed with the endpoint secret, no session",
    ),
    # products & services
    Route("hosting:list", GET, "permission:products"),
    Route("hosting:detail", GET, "permission:products", object_param="pk"),
    Route("hosting:password_reveal", GET_POST, "permission:manageproducts", object_param="pk"),
    Route("hosting:password_change", GET_POST, "permission:manageproducts", object_param="pk"),
    Route(
        "hosting:panel_login",
        GET_POST,
        "permission:manageproducts",
        object_param="pk",
        note="Log in to cPanel: a POST opens a one-time single sign-on URL (audited)",
    ),
    Route("hosting:panel_demo", GET, "permission:manageproducts", object_param="pk"),
    # domains
    Route("domains:list", GET, "permission:domains"),
    Route("domains:detail", GET, "permission:domains", object_param="pk"),
    Route("domains:nameservers", GET_POST, "permission:managedomains", object_param="pk"),
    Route("domains:registrar_lock", GET_POST, "permission:managedomains", object_param="pk"),
    Route("domains:auto_renew", POST, "permission:managedomains", object_param="pk"),
    Route(
        "domains:renew",
        GET_POST,
        "permission:managedomains",
        object_param="pk",
        note="Renew: also needs `invoices` (View & Pay Invoices); issues a renewal invoice",
    ),
    # support
    Route("support:ticket_list", GET, "permission:tickets"),
    Route("support:ticket_open", GET_POST, "permission:tickets"),
    Route("support:ticket_detail", GET, "permission:tickets", object_param="pk"),
    Route("support:ticket_reply", POST, "permission:tickets", object_param="pk"),
    Route("support:ticket_close", POST, "permission:tickets", object_param="pk"),
    Route("support:attachment_download", GET, "permission:tickets", object_param="pk"),
    # API Tokens (under Hello): anyone with access makes tokens carrying at most their own
    # grant; the owner sees and revokes every token of the account, others their own
    Route("api_tokens:list", GET, "account", note="API Tokens"),
    Route("api_tokens:create", GET_POST, "account", note="Create Token: shows the secret once"),
    Route(
        "api_tokens:revoke",
        POST,
        "account",
        object_param="token_id",
        note="its creator or the owner; anyone else's token answers 404",
    ),
    # the REST API: a bearer token only (a session cookie answers 401)
    Route("api:account", GET, "token", note="GET /api/v1/account"),
    Route("api:invoice_list", GET, "token:invoices", note="GET /api/v1/invoices"),
    Route(
        "api:invoice_detail",
        GET,
        "token:invoices",
        object_param="pk",
        note="GET /api/v1/invoices/{id}",
    ),
    Route("api:service_list", GET, "token:products", note="GET /api/v1/services"),
    Route(
        "api:service_detail",
        GET,
        "token:products",
        object_param="pk",
        note="GET /api/v1/services/{id}",
    ),
    Route(
        "api:service_password_reveal",
        POST,
        "token:manageproducts",
        object_param="pk",
        note="POST /api/v1/services/{id}/password/reveal: audited, the owner alerted, no-store",
    ),
    Route(
        "api:service_password_change",
        POST,
        "token:manageproducts",
        object_param="pk",
        note="POST /api/v1/services/{id}/password: through the panel, audited",
    ),
    Route("api:domain_list", GET, "token:domains", note="GET /api/v1/domains"),
    Route(
        "api:domain_detail",
        GET,
        "token:domains",
        object_param="pk",
        note="GET /api/v1/domains/{id}",
    ),
    Route(
        "api:domain_nameservers",
        PUT,
        "token:managedomains",
        object_param="pk",
        note="PUT /api/v1/domains/{id}/nameservers",
    ),
    Route(
        "api:domain_lock",
        PUT,
        "token:managedomains",
        object_param="pk",
        note="PUT /api/v1/domains/{id}/lock",
    ),
    Route(
        "api:domain_auto_renew",
        PUT,
        "token:managedomains",
        object_param="pk",
        note="PUT /api/v1/domains/{id}/auto-renew",
    ),
    Route("api:schema", GET, "public", note="the OpenAPI 3 schema"),
    Route("api:docs", GET, "public", note="the API's docs page (Swagger UI)"),
    *API_BILLING_ROUTES,
    *API_SUPPORT_ROUTES,
    *API_PEOPLE_ROUTES,
)

BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}


def render_markdown() -> str:
    from clientarea.accounts import permissions

    lines = [
        "# Routes and who may use them",
        "",
        "Generated by `manage.py access_table --write` from `src/clientarea/access_table.py`;",
        "`make test` fails when this page is stale. Anything not listed is refused.",
        "",
        "A sub-account limited to chosen services and domains (a resource scope) gets a",
        "404 for any other service or domain of the account, for tickets about another",
        "item (its own tickets about no item stay its own), and for product, domain and",
        "support emails about other items, exactly as for another account's object. A",
        "token limited to chosen items is held to the same. Invoices, contacts and the",
        "profile are account-wide.",
        "",
        "| route | methods | who | object id of the account |",
        "| --- | --- | --- | --- |",
    ]
    for r in sorted(ROUTES, key=lambda r: r.name):
        if r.is_api:
            continue
        if r.permission:
            who = f"`{r.permission}` ({permissions.BY_CODE[r.permission].label})"
        else:
            who = {
                "public": "anyone",
                "login": "any logged-in user",
                "account": "any user of the account",
                "owner": "the owner only",
            }[r.rule]
        note = f" — {r.note}" if r.note else ""
        lines.append(
            f"| `{r.name}`{note} | {', '.join(r.methods)} | {who} | {r.object_param or ''} |"
        )
    lines += [
        "",
        "## API endpoints",
        "",
        "Authenticated by a personal access token alone (`Authorization: Bearer ca_pat_…`);",
        "a session cookie never authenticates the API (401). A token carries its own",
        "permissions and scope intersected with its creator's current grant; another",
        "account's object, or one outside the scope, is a 404.",
        "",
        "| route | methods | token | object id of the account |",
        "| --- | --- | --- | --- |",
    ]
    for r in sorted((r for r in ROUTES if r.is_api), key=lambda r: r.name):
        code = r.rule.split(":", 1)[1] if r.rule.startswith("token:") else None
        if code == "owner":
            who = (
                "`owner`: a token its creator made as the account's owner, carrying the Users power"
            )
        elif code:
            who = f"`{code}` ({permissions.BY_CODE[code].label})"
        else:
            who = {"token": "any token of the account", "public": "anyone"}[r.rule]
        note = f" — {r.note}" if r.note else ""
        lines.append(
            f"| `{r.name}`{note} | {', '.join(r.methods)} | {who} | {r.object_param or ''} |"
        )
    lines += ["", "## Permissions", "", "| code | label | grants |", "| --- | --- | --- |"]
    for p in permissions.CATALOGUE:
        implied = ", ".join(f"`{i.value}`" for i in sorted(p.implies))
        extra = f" (implies {implied})" if implied else ""
        lines.append(f"| `{p.code.value}` | {p.label} | {p.help_text}{extra} |")
    lines += [
        "",
        "Owner-only powers, never grantable: manage users and invitations, add or remove",
        "stored payment methods, transfer ownership, close the account.",
        "",
    ]
    from clientarea.channel_table import render_markdown as render_channels

    return "\n".join(lines) + "\n" + render_channels()
