from django.urls import path

from . import stripe_webhooks, views

app_name = "billing"

urlpatterns = [
    path("", views.invoice_list, name="invoice_list"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:pk>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:pk>/pay/", views.invoice_pay, name="invoice_pay"),
    # The card processor sends the browser back here after 3-D Secure.
    path("invoices/<int:pk>/pay/return/", views.invoice_pay_return, name="invoice_pay_return"),
    path("invoices/<int:pk>/pay/cancel/", views.invoice_pay_cancel, name="invoice_pay_cancel"),
    path("invoices/pay-several/", views.pay_several, name="pay_several"),
    path("add-funds/", views.add_funds, name="add_funds"),
    path("payment-methods/", views.payment_methods, name="payment_methods"),
    path("payment-methods/add/", views.payment_method_add, name="payment_method_add"),
    path(
        "payment-methods/add/return/",
        views.payment_method_return,
        name="payment_method_return",
    ),
    # The sandbox's tokenizer (DEMO_MODE only; a 404 otherwise).
    path("sandbox/tokens/", views.sandbox_tokenize, name="sandbox_tokenize"),
    path(
        "payment-methods/<int:pk>/remove/",
        views.payment_method_remove,
        name="payment_method_remove",
    ),
    # Stripe posts its events here (signed; no session, no CSRF token).
    path("stripe/webhook/", stripe_webhooks.stripe_webhook, name="stripe_webhook"),
]
