"""The API's endpoints for the account's profile, contacts, Email History, users and invitations (included by ``urls.py`` under ``v1/``)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
