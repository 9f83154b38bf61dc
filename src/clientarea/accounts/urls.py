from django.urls import path

from . import views

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
]
