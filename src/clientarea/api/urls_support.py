"""The API's endpoints for tickets, replies and attachments (included by ``urls.py`` under ``v1/``)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
