from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from clientarea.core.validators import validate_multi_line, validate_single_line

from . import attachments
from .models import Department, Ticket

MESSAGE_MAX_LENGTH = 20_000


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class AttachmentsField(forms.FileField):
    """Zero or more uploads, checked together against the attachment rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": attachments.ACCEPT_ATTR}))
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", attachments.HELP_TEXT)
        kwargs.setdefault("label", "Attachments")
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        uploads = data if isinstance(data, list | tuple) else ([data] if data else [])
        single = super().clean
        cleaned = [single(u, initial) for u in uploads if u]
        attachments.attachments_check(cleaned)
        return cleaned


class TicketOpenForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.filter(is_active=True),
        empty_label=None,
        error_messages={"invalid_choice": "Choose one of the departments listed."},
    )
    subject = forms.CharField(max_length=200, validators=[validate_single_line])
    priority = forms.ChoiceField(choices=Ticket.Priority.choices, initial=Ticket.Priority.MEDIUM)
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=MESSAGE_MAX_LENGTH,
        validators=[validate_multi_line],
    )
    about = forms.ChoiceField(
        label="Related service or domain (optional)",
        required=False,
        error_messages={"invalid_choice": "Choose one of the services or domains listed."},
    )
    attachments = AttachmentsField()

    def __init__(
        self,
        *args: Any,
        about_choices: list[tuple[str, list[tuple[str, str]]]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["about"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "None (a general question)"), *(about_choices or [])]

    def clean_about(self) -> tuple[str, int] | None:
        """("service", id), ("domain", id) or None."""
        value: str = self.cleaned_data.get("about") or ""
        if not value:
            return None
        kind, _, pk = value.partition(":")
        return kind, int(pk)

    def clean_subject(self) -> str:
        return " ".join(self.cleaned_data["subject"].split())


class TicketReplyForm(forms.Form):
    message = forms.CharField(
        label="Your reply",
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=MESSAGE_MAX_LENGTH,
        validators=[validate_multi_line],
    )
    attachments = AttachmentsField()


class StatusFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "All tickets"), *Ticket.Status.choices], required=False
    )
