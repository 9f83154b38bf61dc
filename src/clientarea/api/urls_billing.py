"""The API's endpoints for invoices' PDF and paying them (included by ``urls.py`` under ``v1/``)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
