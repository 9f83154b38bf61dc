"""What the API's ticket endpoints take and answer: the same rows the ticket pages show
(a thread has no staff-only notes: every message of it is on the customer's page), and
the same limits as the pages' forms (the service functions check the rest)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clientarea.support.attachments import (
    ALLOWED_EXTENSIONS,
    MAX_BYTES,
    MAX_FILES,
    served_content_type,
)
from clientarea.support.forms import MESSAGE_MAX_LENGTH
from clientarea.support.models import Attachment, Ticket, TicketMessage
from clientarea.support.services import SUBJECT_MAX_LENGTH

from .responses import BIGINT_MAX

STATUS_HELP = ", ".join(f"'{value}' ({label})" for value, label in Ticket.Status.choices)


# A ticket's status is documented as a pattern, not an enum: drf-spectacular turns every
# enum into a component named after its field, and "status" is taken by the invoices',
# services' and domains' (a settings override, TicketStatusEnum, could name it instead).
@extend_schema_field(
    {
        "type": "string",
        "pattern": "^(" + "|".join(Ticket.Status.values) + ")$",
        "description": f"One of {STATUS_HELP}.",
    }
)
class TicketStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "error_messages",
            {"invalid_choice": "Not a status: use one of " + ", ".join(Ticket.Status.values) + "."},
        )
        super().__init__(choices=Ticket.Status.choices, **kwargs)


@extend_schema_field({"type": "string", "enum": list(Ticket.Priority.values)})
class TicketPriorityField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "error_messages",
            {
                "invalid_choice": "Not a priority: use one of "
                + ", ".join(Ticket.Priority.values)
                + "."
            },
        )
        super().__init__(choices=Ticket.Priority.choices, **kwargs)


class TicketFilter(serializers.Serializer):
    status = TicketStatusField(
        required=False, help_text=f"Only tickets of this status: {STATUS_HELP}."
    )

    def to_internal_value(self, data: Any) -> Any:
        # DRF reads an empty optional query parameter as absent; "?status=" is no status.
        if hasattr(data, "get") and data.get("status") == "":
            raise serializers.ValidationError(
                {"status": [self.fields["status"].error_messages["invalid_choice"]]}
            )
        return super().to_internal_value(data)


class DepartmentRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class TicketSerializer(serializers.ModelSerializer):
    status = TicketStatusField(read_only=True)
    priority = TicketPriorityField(read_only=True)
    department = DepartmentRefSerializer(read_only=True)
    service = serializers.IntegerField(
        source="service_id",
        allow_null=True,
        read_only=True,
        help_text="The id of the service the ticket is about, or null.",
    )
    domain = serializers.IntegerField(
        source="domain_id",
        allow_null=True,
        read_only=True,
        help_text="The id of the domain the ticket is about, or null.",
    )
    opener_name = serializers.CharField(
        read_only=True, help_text="Who opened it, as they were named then."
    )

    class Meta:
        model = Ticket
        fields = [
            "id",
            "subject",
            "status",
            "priority",
            "department",
            "service",
            "domain",
            "opener_name",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AttachmentSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="original_name", read_only=True)
    content_type = serializers.SerializerMethodField(
        help_text="The type it is served as (anything but a few safe types is "
        "application/octet-stream)."
    )
    download_url = serializers.SerializerMethodField(
        help_text="GET it with the same token: the file, as a download."
    )

    class Meta:
        model = Attachment
        fields = ["id", "name", "content_type", "size", "created_at", "download_url"]
        read_only_fields = fields

    def get_content_type(self, obj: Attachment) -> str:
        return served_content_type(obj.content_type)

    @extend_schema_field({"type": "string", "format": "uri"})
    def get_download_url(self, obj: Attachment) -> str:
        path = reverse("api:ticket_attachment", kwargs={"pk": obj.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class TicketMessageSerializer(serializers.ModelSerializer):
    author_name = serializers.CharField(read_only=True)
    is_staff = serializers.BooleanField(
        read_only=True, help_text="Written by the provider's support staff."
    )
    attachments = AttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = TicketMessage
        fields = ["id", "author_name", "is_staff", "body", "created_at", "attachments"]
        read_only_fields = fields


class TicketDetailSerializer(TicketSerializer):
    messages = TicketMessageSerializer(
        many=True,
        read_only=True,
        source="thread",
        help_text="The thread, oldest first.",
    )

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "messages"]
        read_only_fields = fields


# --- what the writes take -----------------------------------------------------------------
# In a JSON body a text is a string and an id a number, as the schema says (DRF would take
# 0 for "0" and "12" for 12); a multipart form sends every value as text, so there the
# text of a number is a number. The view says which (context "json").


class TextField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if self.context.get("json") and not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class IdField(serializers.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=BIGINT_MAX, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if self.context.get("json") and (isinstance(data, bool) or not isinstance(data, int)):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class TicketOpenSerializer(serializers.Serializer):
    """A new ticket, as the Open Ticket page takes it (JSON, or multipart with files)."""

    subject = TextField(
        max_length=SUBJECT_MAX_LENGTH,
        help_text="One line.",
        error_messages={"blank": "Write a subject."},
    )
    message = TextField(
        max_length=MESSAGE_MAX_LENGTH,
        trim_whitespace=False,
        error_messages={"blank": "Write a message."},
    )
    department = IdField(
        required=False,
        allow_null=True,
        help_text="A department that takes new tickets; by default the first one listed "
        "on the Open Ticket page.",
    )
    priority = TicketPriorityField(required=False, help_text="'medium' by default.")
    service = IdField(
        required=False,
        allow_null=True,
        help_text="The id of a service the token reaches (it carries products, the service "
        "is in its scope) that the ticket is about. At most one of service and domain.",
    )
    domain = IdField(
        required=False,
        allow_null=True,
        help_text="The id of a domain the token reaches (it carries domains, the domain is "
        "in its scope) that the ticket is about.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("service") is not None and attrs.get("domain") is not None:
            raise serializers.ValidationError(
                {"domain": ["A ticket is about one service or one domain, not both."]}
            )
        return attrs


class TicketReplySerializer(serializers.Serializer):
    message = TextField(
        max_length=MESSAGE_MAX_LENGTH,
        trim_whitespace=False,
        error_messages={"blank": "Write a message."},
    )


ATTACHMENTS_HELP = (
    f"Up to {MAX_FILES} files of {MAX_BYTES // (1024 * 1024)} MB each "
    f"({', '.join(ALLOWED_EXTENSIONS)}), checked by name and content as on the page."
)


class TicketOpenUploadSerializer(TicketOpenSerializer):
    """The same as multipart/form-data, with attachments (schema only: the view reads the
    files from the request)."""

    attachments = serializers.ListField(
        child=serializers.FileField(), required=False, help_text=ATTACHMENTS_HELP
    )


class TicketReplyUploadSerializer(TicketReplySerializer):
    attachments = serializers.ListField(
        child=serializers.FileField(), required=False, help_text=ATTACHMENTS_HELP
    )
