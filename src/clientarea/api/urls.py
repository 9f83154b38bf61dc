from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("v1/account", views.AccountView.as_view(), name="account"),
    path("v1/invoices", views.InvoiceListView.as_view(), name="invoice_list"),
    path("v1/invoices/<int:pk>", views.InvoiceDetailView.as_view(), name="invoice_detail"),
    path("v1/schema", views.schema_view, name="schema"),
    path("v1/docs", views.docs_view, name="docs"),
]
