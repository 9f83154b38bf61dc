from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Client area back office"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("clientarea.core.urls")),
    path("", include("clientarea.accounts.urls")),
    path("billing/", include("clientarea.billing.urls")),
    path("services/", include("clientarea.hosting.urls")),
    path("domains/", include("clientarea.domains.urls")),
    path("support/", include("clientarea.support.urls")),
    path("emails/", include("clientarea.notifications.urls")),
    path("activity/", include("clientarea.audit.urls")),
    path("security/", include("clientarea.security.urls")),
    path("api-tokens/", include("clientarea.api.urls_tokens")),
    path("api/", include("clientarea.api.urls")),
]
