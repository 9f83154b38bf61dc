"""The site's URLs with ``/api/v1/account`` routed to ``views_people.account_view`` (GET
read, PATCH profile), as ``api/urls.py`` is to route it: the PATCH tests use it until then."""

from django.urls import path

from clientarea.api import views_people
from config.urls import urlpatterns as site_urlpatterns

urlpatterns = [path("api/v1/account", views_people.account_view), *site_urlpatterns]
