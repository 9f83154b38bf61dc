from django.urls import include, path

from . import urls_billing, urls_people, urls_support, views, views_people

app_name = "api"

urlpatterns = [
    # GET reads (views.AccountView, any token); PATCH changes the profile
    # (views_people.AccountProfileView, token:profile, its own row api:account_update).
    path("v1/account", views_people.account_view, name="account"),
    path("v1/invoices", views.InvoiceListView.as_view(), name="invoice_list"),
    path("v1/invoices/<int:pk>", views.InvoiceDetailView.as_view(), name="invoice_detail"),
    path("v1/services", views.ServiceListView.as_view(), name="service_list"),
    path("v1/services/<int:pk>", views.ServiceDetailView.as_view(), name="service_detail"),
    path(
        "v1/services/<int:pk>/password/reveal",
        views.ServicePasswordRevealView.as_view(),
        name="service_password_reveal",
    ),
    path(
        "v1/services/<int:pk>/password",
        views.ServicePasswordChangeView.as_view(),
        name="service_password_change",
    ),
    path("v1/domains", views.DomainListView.as_view(), name="domain_list"),
    path("v1/domains/<int:pk>", views.DomainDetailView.as_view(), name="domain_detail"),
    path(
        "v1/domains/<int:pk>/nameservers",
        views.DomainNameserversView.as_view(),
        name="domain_nameservers",
    ),
    path("v1/domains/<int:pk>/lock", views.DomainLockView.as_view(), name="domain_lock"),
    path(
        "v1/domains/<int:pk>/auto-renew",
        views.DomainAutoRenewView.as_view(),
        name="domain_auto_renew",
    ),
    # One module per area, so each grows on its own.
    path("v1/", include(urls_billing.urlpatterns)),
    path("v1/", include(urls_support.urlpatterns)),
    path("v1/", include(urls_people.urlpatterns)),
    path("v1/schema", views.schema_view, name="schema"),
    path("v1/docs", views.docs_view, name="docs"),
]
