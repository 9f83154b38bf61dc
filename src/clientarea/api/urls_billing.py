"""The API's endpoints for invoices' PDF and paying them (included by ``urls.py`` under ``v1/``)."""

from django.urls import URLPattern, path

from . import views_billing

urlpatterns: list[URLPattern] = [
    path("invoices/<int:pk>/pdf", views_billing.InvoicePdfView.as_view(), name="invoice_pdf"),
    path("invoices/<int:pk>/pay", views_billing.InvoicePayView.as_view(), name="invoice_pay"),
]
