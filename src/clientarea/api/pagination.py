"""Cursor pagination: ``?cursor=`` from the previous page's ``next``; ``page_size`` up to
100. A cursor names a position in a unique, unchanging order (the invoice number), so a
page never repeats or skips a row when rows are added meanwhile, and a deep page costs
the same as the first (no OFFSET)."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DIGITS = re.compile(r"[0-9]{1,18}")
CURSOR_CHARS = re.compile(r"^[A-Za-z0-9+/]{1,200}={0,2}$")


class BadCursor(exceptions.ValidationError):
    def __init__(self) -> None:
        super().__init__(
            {"cursor": ["Not a cursor of this list: use the next or previous link as given."]}
        )


class NumberCursorPagination(CursorPagination):
    ordering = "-number"
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return DEFAULT_PAGE_SIZE
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise exceptions.ValidationError(
                {"page_size": [f"A whole number from 1 to {MAX_PAGE_SIZE}."]}
            )
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None and not CURSOR_CHARS.fullmatch(encoded):
            raise BadCursor()  # base64 decoding would skip the junk and answer page one
        try:
            cursor: Cursor | None = super().decode_cursor(request)
        except exceptions.NotFound:
            raise BadCursor() from None
        if cursor is not None and cursor.position is not None:
            position = str(cursor.position)
            if not DIGITS.fullmatch(position) or len(position) > 18:
                raise BadCursor()
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """As DRF documents them, with the limits this class enforces (a value outside
        them is a 400), and the cursor said to be opaque."""
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "Opaque: the value of the previous answer's `next` or `previous` link."
                )
                parameter["schema"] = {"type": "string", "pattern": CURSOR_CHARS.pattern}
            elif parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": DEFAULT_PAGE_SIZE,
                }
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = super().get_paginated_response_schema(schema)
        out["required"] = ["next", "previous", "results"]
        return out


class IdCursorPagination(NumberCursorPagination):
    """The same, in the order of the rows' ids (services, domains): unique and unchanging."""

    ordering = "id"


def paginated(view: Any, request: Request, rows: Any, serializer_class: Any) -> Any:
    """A list view's answer: the page of `rows` its pagination class cuts at the request's
    cursor, serialized, with the next and previous links."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
