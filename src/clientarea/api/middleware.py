"""The API's boundary, placed before the session middleware in settings.MIDDLEWARE.

For every request under ``/api/``:

- the session cookie is dropped before the session middleware reads it: a session never
  authenticates the API (nor is it touched or extended by an API call), whatever the
  browser sends along;
- an answer Django gives outside the API's views (an unknown URL, an unexpected error
  in a middleware) is turned into ``application/problem+json``: never an HTML page;
- responses are ``Cache-Control: no-store`` and vary on ``Authorization`` (and on
  ``Cookie``, like every page: the schema and docs hold no account data, but nothing
  under /api/ is worth a cached copy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from .problems import CONTENT_TYPE, problem_response

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


class ApiBoundaryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api(request):
            return self.get_response(request)
        request.COOKIES.pop(settings.SESSION_COOKIE_NAME, None)
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if response.status_code >= 400 and not content_type.startswith(
            (CONTENT_TYPE, "application/json")
        ):
            response = problem_response(response.status_code)
        add_never_cache_headers(response)
        patch_vary_headers(response, ("Authorization", "Cookie"))
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api(request):
            return None
        if isinstance(exception, Http404):
            return problem_response(404)
        if isinstance(exception, PermissionDenied):
            return problem_response(403, "Not permitted.")
        logger.exception("Unexpected error under /api/", exc_info=exception)
        return problem_response(500)
