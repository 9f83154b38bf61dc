"""The API's endpoints for the account's profile, contacts, Email History, users and
invitations (included by ``urls.py`` under ``v1/``)."""

from django.urls import URLPattern, path

from . import views_people

urlpatterns: list[URLPattern] = [
    # PATCH /api/v1/account: reached through views_people.account_view, which urls.py
    # routes v1/account to (GET stays views.AccountView's); named here for its own row.
    path("account", views_people.AccountProfileView.as_view(), name="account_update"),
    path("contacts", views_people.ContactListView.as_view(), name="contact_list"),
    path("contacts/<int:pk>", views_people.ContactDetailView.as_view(), name="contact_detail"),
    path(
        "contacts/<int:pk>/confirmation",
        views_people.ContactConfirmationView.as_view(),
        name="contact_confirmation",
    ),
    path("emails", views_people.EmailListView.as_view(), name="email_list"),
    path("emails/<int:pk>", views_people.EmailDetailView.as_view(), name="email_detail"),
    path("users", views_people.UserListView.as_view(), name="user_list"),
    path("users/<int:pk>", views_people.UserDetailView.as_view(), name="user_detail"),
    path("invitations", views_people.InvitationListView.as_view(), name="invitation_list"),
    path(
        "invitations/<int:pk>",
        views_people.InvitationDetailView.as_view(),
        name="invitation_detail",
    ),
    path(
        "invitations/<int:pk>/resend",
        views_people.InvitationResendView.as_view(),
        name="invitation_resend",
    ),
]
