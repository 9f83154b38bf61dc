"""What the people endpoints answer and accept: the account's profile, contacts, Email
History, users and invitations. Request bodies only shape the JSON; what a value may be
is decided by the pages' own forms and the service functions (``views_people``), so the
API refuses exactly what the pages refuse, in the same words."""

from __future__ import annotations

from typing import Any

from django_countries import countries
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clientarea.accounts.models import Contact, Invitation, Membership
from clientarea.accounts.permissions import ALL_CODES, EmailKind
from clientarea.accounts.scope import SCOPE_KINDS
from clientarea.api.serializers import JsonCharField
from clientarea.notifications.models import OutboxEmail

PERMISSION_CHOICES = sorted(ALL_CODES)
CONTACT_KINDS = [k for k, _ in Contact.Kind.choices]


def scope_out(scope: Any) -> dict[str, list[int]] | None:
    """A stored scope as the API shows it: null, or every kind with its ids."""
    if not isinstance(scope, dict):
        return None
    return {kind: sorted(int(i) for i in scope.get(kind) or ()) for kind in SCOPE_KINDS}


class ScopeOutSerializer(serializers.Serializer):
    service = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    domain = serializers.ListField(child=serializers.IntegerField(), read_only=True)


class ScopeInSerializer(serializers.Serializer):
    service = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=1000,
        help_text="Ids of the account's services.",
    )
    domain = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=1000,
        help_text="Ids of the account's domains.",
    )


# --- the account's profile ----------------------------------------------------------------


class ProfileUpdateSerializer(serializers.Serializer):
    """Only the fields sent change; each is checked as the Account Profile page checks it."""

    # The model's limits; the page's form checks the rest (one line, the VAT number).
    company_name = JsonCharField(required=False, allow_blank=True, max_length=200)
    address_line1 = JsonCharField(required=False, allow_blank=True, max_length=200)
    address_line2 = JsonCharField(required=False, allow_blank=True, max_length=200)
    city = JsonCharField(required=False, allow_blank=True, max_length=100)
    postcode = JsonCharField(required=False, allow_blank=True, max_length=20)
    country = serializers.ChoiceField(
        choices=[code for code, _ in countries],
        required=False,
        help_text="ISO 3166-1 alpha-2 code, e.g. IE.",
        error_messages={"invalid_choice": "Choose a country from the list ({input} is not one)."},
    )
    tax_number = JsonCharField(
        required=False,
        allow_blank=True,
        max_length=40,
        help_text="A VAT number valid for the country the account will have ('' for none).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name[:40]: ["Not a field of the account's profile."] for name in unknown[:5]}
            )
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send at least one field of the profile to change."]}
            )
        return attrs


# --- contacts ---------------------------------------------------------------------------


class ContactSerializer(serializers.ModelSerializer):
    email_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=CONTACT_KINDS),
        read_only=True,
        help_text="The kinds of the account's email this contact receives.",
    )
    confirmed = serializers.BooleanField(
        source="is_confirmed",
        read_only=True,
        help_text="The address's holder confirmed it: nothing is sent to it before.",
    )

    class Meta:
        model = Contact
        fields = ["id", "name", "email", "phone", "email_kinds", "confirmed", "created_at"]
        read_only_fields = fields


class ContactWriteSerializer(serializers.Serializer):
    name = JsonCharField(max_length=150)
    email = serializers.EmailField(max_length=254)
    phone = JsonCharField(required=False, allow_blank=True, max_length=30, default="")
    email_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=CONTACT_KINDS),
        min_length=1,
        max_length=len(CONTACT_KINDS) * 2,
        help_text="Only kinds the token's access reads itself; the others stay as they are.",
    )


class ContactPatchSerializer(ContactWriteSerializer):
    """PATCH: the fields sent replace those of the contact."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)


# --- Email History ----------------------------------------------------------------------


def _email_to(email: OutboxEmail, sees_contacts: bool) -> tuple[str | None, str | None]:
    """As the page shows it: a secondary contact's address only to those who manage
    contacts (null otherwise)."""
    if email.audience == OutboxEmail.Audience.CONTACT and not sees_contacts:
        return None, None
    return email.to_email, email.to_name


class EmailSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=[k for k, _ in EmailKind.choices], read_only=True)
    # Plain strings, not enums: several models have a "status" of their own.
    status = serializers.CharField(
        read_only=True, help_text=", ".join(s for s, _ in OutboxEmail.Status.choices) + "."
    )
    to_email = serializers.SerializerMethodField(
        help_text="null for a secondary contact's email unless the token carries contacts."
    )
    to_name = serializers.SerializerMethodField()

    class Meta:
        model = OutboxEmail
        fields = ["id", "created_at", "sent_at", "to_email", "to_name", "subject", "kind", "status"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_to_email(self, email: OutboxEmail) -> str | None:
        return _email_to(email, bool(self.context.get("sees_contacts")))[0]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_to_name(self, email: OutboxEmail) -> str | None:
        return _email_to(email, bool(self.context.get("sees_contacts")))[1]


class EmailDetailSerializer(EmailSerializer):
    body = serializers.CharField(
        source="readable_body",
        allow_null=True,
        read_only=True,
        help_text="The text as sent; null while it still holds a one-time link (not yet "
        "sent); '' once the retention period cleared it.",
    )

    class Meta(EmailSerializer.Meta):
        fields = [*EmailSerializer.Meta.fields, "body"]
        read_only_fields = fields


# --- users and invitations ----------------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    first_name = serializers.CharField(source="user.first_name", read_only=True)
    last_name = serializers.CharField(source="user.last_name", read_only=True)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSION_CHOICES), read_only=True
    )
    scope = serializers.SerializerMethodField(
        help_text="null: every service and domain; otherwise only these ids."
    )
    status = serializers.CharField(
        read_only=True, help_text=", ".join(s for s, _ in Membership.Status.choices) + "."
    )
    usable = serializers.SerializerMethodField(help_text="Their access works now.")

    class Meta:
        model = Membership
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "permissions",
            "scope",
            "status",
            "usable",
            "expires_at",
            "created_at",
            "revoked_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ScopeOutSerializer(allow_null=True))
    def get_scope(self, membership: Membership) -> dict[str, list[int]] | None:
        return scope_out(membership.scope)

    @extend_schema_field(serializers.BooleanField())
    def get_usable(self, membership: Membership) -> bool:
        return membership.is_usable()


class InvitationSerializer(serializers.ModelSerializer):
    """Never the link or any secret of it."""

    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSION_CHOICES), read_only=True
    )
    scope = serializers.SerializerMethodField(
        help_text="null: every service and domain; otherwise only these ids."
    )
    status = serializers.CharField(
        read_only=True, help_text=", ".join(s for s, _ in Invitation.Status.choices) + "."
    )
    invited_by = serializers.SerializerMethodField(help_text="Who sent it last.")

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "permissions",
            "scope",
            "access_expires_at",
            "status",
            "expires_at",
            "sent_at",
            "invited_by",
        ]
        read_only_fields = fields

    @extend_schema_field(ScopeOutSerializer(allow_null=True))
    def get_scope(self, invitation: Invitation) -> dict[str, list[int]] | None:
        return scope_out(invitation.scope)

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_invited_by(self, invitation: Invitation) -> str | None:
        return invitation.invited_by.email if invitation.invited_by else None


class GrantSerializer(serializers.Serializer):
    """What a sub-account may do: the User Management page's choices as JSON."""

    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSION_CHOICES),
        min_length=1,
        max_length=len(PERMISSION_CHOICES) * 2,
        help_text="Permission codes (implied ones are added).",
    )
    scope = ScopeInSerializer(
        allow_null=True,
        required=False,
        default=None,
        help_text="null or absent: every service and domain; otherwise only these ids.",
    )
    access_expires_on = serializers.DateField(
        allow_null=True,
        required=False,
        default=None,
        help_text="Access ends at the end of this day (the owner's time zone); null: never.",
    )


class InvitationCreateSerializer(GrantSerializer):
    email = serializers.EmailField(max_length=254)
