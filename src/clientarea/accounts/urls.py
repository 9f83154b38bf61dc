from django.urls import path

from . import (
    views,
    views_contacts,
    views_invitations,
    views_owner_emails,
    views_ownership,
    views_users,
)

app_name = "accounts"

urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("password-reset/", views.password_reset, name="password_reset"),
    path("password-reset/sent/", views.password_reset_done, name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("password-reset/done/", views.password_reset_complete, name="password_reset_complete"),
    path("accounts/switch/", views.select_account, name="select_account"),
    path("accounts/access-removed/", views.access_removed, name="access_removed"),
    path("profile/", views.profile, name="profile"),
    path("confirm-password/", views.confirm_password, name="confirm_password"),
    path("account/details/", views.account_profile, name="account_profile"),
    # User Management (owner only)
    path("account/users/", views_users.users, name="users"),
    path("account/users/invite/", views_users.user_invite, name="user_invite"),
    path("account/users/<int:membership_id>/", views_users.user_edit, name="user_edit"),
    path("account/users/<int:membership_id>/revoke/", views_users.user_revoke, name="user_revoke"),
    path(
        "account/invitations/<int:invitation_id>/resend/",
        views_users.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "account/invitations/<int:invitation_id>/cancel/",
        views_users.invitation_cancel,
        name="invitation_cancel",
    ),
    # The emailed link keeps its token in the session and redirects to the token-less page.
    path("invitation/accept/", views_invitations.invitation_page, name="invitation_page"),
    path("invitation/<str:token>/", views_invitations.invitation_link, name="invitation_accept"),
    # Transfer Ownership and Close Account (owner only); the transfer link (public).
    path("account/transfer/", views_ownership.transfer, name="ownership_transfer"),
    path(
        "account/transfer/<int:transfer_id>/cancel/",
        views_ownership.transfer_cancel,
        name="ownership_transfer_cancel",
    ),
    path("ownership/accept/", views_ownership.transfer_page, name="ownership_transfer_page"),
    path("ownership/<str:token>/", views_ownership.transfer_link, name="ownership_transfer_link"),
    path("account/close/", views_ownership.close, name="account_close"),
    path("profile/delete/", views_ownership.delete_login, name="delete_login"),
    # Secondary contacts (permission: contacts)
    path("account/contacts/", views_contacts.contacts, name="contacts"),
    path("account/emails/", views_owner_emails.owner_emails, name="owner_emails"),
    path("account/contacts/add/", views_contacts.contact_add, name="contact_add"),
    path("account/contacts/<int:contact_id>/", views_contacts.contact_edit, name="contact_edit"),
    path(
        "account/contacts/<int:contact_id>/remove/",
        views_contacts.contact_remove,
        name="contact_remove",
    ),
    path(
        "account/contacts/<int:contact_id>/resend-confirmation/",
        views_contacts.contact_confirmation_resend,
        name="contact_confirmation_resend",
    ),
    # The link in a contact's confirmation email (public: contacts have no login).
    path("contacts/confirm/", views_contacts.contact_confirm, name="contact_confirm"),
    path(
        "contacts/confirm/<str:token>/",
        views_contacts.contact_confirm_link,
        name="contact_confirm_link",
    ),
]
