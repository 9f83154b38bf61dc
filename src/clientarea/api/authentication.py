"""``Authorization: Bearer ca_pat_…``: the API's one way in.

DRF is configured with this class alone, so a session cookie never authenticates the API
(and ``ApiBoundaryMiddleware`` drops it before the session is even read): no CSRF hole,
since a browser cannot be made to send someone's token. Pages never look at this header:
a token never authenticates a page.
"""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from clientarea.audit.services import client_ip

from .services import TokenRefused, token_authenticate

REALM = 'Bearer realm="api"'


class TokenFailed(exceptions.AuthenticationFailed):
    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.problem_code = code


class BearerTokenAuthentication(BaseAuthentication):
    @sensitive_variables("header", "secret")
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise TokenFailed(
                "Send the token as: Authorization: Bearer ca_pat_….", "bad_authorization"
            )
        try:
            found = token_authenticate(secret=secret.strip(), ip=client_ip(request._request))
        except TokenRefused as refused:
            raise TokenFailed(refused.detail, refused.code) from None
        return found.access.user, found

    def authenticate_header(self, request: Request) -> str:
        return REALM
