from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as real_patterns


def undeclared(request: HttpRequest) -> HttpResponse:
    return HttpResponse("should never be served")


urlpatterns = [path("undeclared/", undeclared), *real_patterns]
