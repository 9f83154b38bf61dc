"""Every error of the API is ``application/problem+json`` (RFC 9457).

``type`` is ``about:blank`` (the status says what kind of problem it is) and ``title``
the status's phrase; ``detail`` tells a person what went wrong; ``code`` (an extension
member) tells a script, e.g. ``token_expired``; a 400 also lists the bad fields in
``errors``. ``exception_handler`` is DRF's hook for errors raised in an API view (any
exception: an unexpected one is logged and answered with a 500 problem, never Django's
HTML page); ``ApiBoundaryMiddleware`` turns the answers Django gives outside any view
(an unknown URL under /api/) into problems too.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"

DEFAULT_DETAIL = {
    400: "The request is not valid.",
    401: "Send a personal access token: Authorization: Bearer ca_pat_….",
    403: "The token does not carry the permission this needs.",
    404: "No such object, or not one this token can reach.",
    405: "This method is not allowed here.",
    406: "This endpoint answers JSON only.",
    409: "The request conflicts with the current state of the object.",
    413: "The request body is too large.",
    415: "Send JSON.",
    429: "Too many requests with this token: wait and try again.",
    500: "Something went wrong on our side. Nothing was changed; try again later.",
}


def problem(
    status: int, detail: str | None = None, *, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or DEFAULT_DETAIL.get(status, HTTPStatus(status).description),
    }
    if code:
        body["code"] = code
    body.update(extra)
    return body


def problem_response(
    status: int, detail: str | None = None, *, code: str | None = None, **extra: Any
) -> JsonResponse:
    """A plain Django response (for the middleware, outside DRF)."""
    return JsonResponse(
        problem(status, detail, code=code, **extra), status=status, content_type=CONTENT_TYPE
    )


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation errors as {"field": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(errors, list):
        for item in errors:
            for field, messages in _flatten(item, prefix).items():
                out.setdefault(field, []).extend(messages)
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(errors))
    return out


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, RequestDataTooBig):
        # Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE), met when DRF reads the body.
        exc = BodyTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."
        )
        exc.problem_code = "too_large"
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request could not be read.")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        # A service function's own refusal (policy.NotPermitted) names the permission.
        refused = exceptions.PermissionDenied(str(exc) or None)
        refused.problem_code = "permission_missing"
        exc = refused
    if not isinstance(exc, exceptions.APIException):
        logger.exception("Unexpected error in the API", exc_info=exc)
        set_rollback()
        return Response(problem(500), status=500, content_type=CONTENT_TYPE)
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(max(1, int(wait)))
    status = exc.status_code
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        status = 401 if "WWW-Authenticate" in headers else status
    code = getattr(exc, "problem_code", None)
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()), None)
        detail = f"{first[0]}: {first[1][0]}" if first else None
        body = problem(400, detail, code=code or "invalid", errors=errors)
    elif isinstance(exc, exceptions.Throttled):
        body = problem(429, None, code="rate_limited")
    else:
        text = exc.detail if isinstance(exc.detail, str) else None
        if status == 404:
            text = None  # one message for missing and unreachable: nothing is confirmed
        body = problem(status, text, code=code)
    set_rollback()
    return Response(body, status=status, headers=headers, content_type=CONTENT_TYPE)
