"""What every API view shares: the problem shape as the schema documents it, the errors
that most endpoints answer, and the exceptions that turn a service function's refusal
into a problem (``problems.exception_handler`` renders them)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions

BIGINT_MAX = 2**63 - 1

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "example": "token_expired"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def problem_doc(description: str) -> OpenApiResponse:
    """A documented problem answer (the schema of every error body)."""
    return OpenApiResponse(response=PROBLEM, description=description)


COMMON_ERRORS = {
    401: problem_doc("No token, or a dead one (revoked, expired, creator's access ended)."),
    429: problem_doc("Rate limit reached: see Retry-After."),
}


class ActionRefused(exceptions.APIException):
    """The service function refused (the object's state, the outside system's refusal):
    a 400 with the sentence the page shows."""

    status_code = 400
    default_code = "refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem_code = "refused"


class ActionConflict(exceptions.APIException):
    status_code = 409
    default_code = "change_pending"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem_code = "change_pending"


class OutsideDown(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem_code = "unavailable"
        self.wait = 60  # answered as Retry-After


def invalid(field: str, exc: DjangoValidationError) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [str(m) for m in exc.messages]})


def object_pk(pk: int) -> int:
    return 0 if pk > BIGINT_MAX else pk  # no row has it: the same 404 as another account's


ITEM_ERRORS = {
    403: problem_doc("The token does not carry the permission, or its creator no longer holds it."),
    404: problem_doc("No such object on the token's account, or outside the token's scope."),
    **COMMON_ERRORS,
}
CHANGE_ERRORS = {
    400: problem_doc("Bad input, or refused (the object's state, the outside system's words)."),
    409: problem_doc("An earlier change is still waiting for the outside system's answer."),
    503: problem_doc("The outside system could not be reached: nothing was changed."),
    **ITEM_ERRORS,
}
