from django.urls import path

from . import views

app_name = "security"

urlpatterns = [
    path("", views.security_page, name="security"),
    path("two-factor/setup/", views.two_factor_setup, name="two_factor_setup"),
    path("two-factor/disable/", views.two_factor_disable, name="two_factor_disable"),
    path("two-factor/recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("sessions/<int:session_id>/end/", views.session_end, name="session_end"),
    path("sessions/end-others/", views.sessions_end_others, name="sessions_end_others"),
    path("password/", views.password_change, name="password_change"),
    path("email/", views.email_change, name="email_change"),
    # The emailed link keeps its token in the session and redirects to the token-less page.
    path("email/confirm/", views.email_change_confirm_page, name="email_change_confirm_page"),
    path("email/confirm/<str:token>/", views.email_change_confirm, name="email_change_confirm"),
    path("account/require-two-factor/", views.require_two_factor, name="require_two_factor"),
]
