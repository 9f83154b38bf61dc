"""The API's endpoints for people: the account's profile, contacts, Email History, users
and invitations. Each looks its object up first (another account's is a 404, before the
body is read), then checks the body with the page's own form (so the API refuses what
the page refuses, in the same words), then calls the page's service function with the
token's access: the service asks the policy again itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clientarea.accounts import selectors as account_selectors
from clientarea.accounts import services as account_services
from clientarea.accounts.forms import AccountProfileForm
from clientarea.accounts.forms_users import (
    CHOOSE,
    SCOPE_ALL,
    SCOPE_ONLY,
    ContactForm,
    InviteForm,
    MembershipForm,
    scope_field_name,
)
from clientarea.accounts.models import Account, Contact, Invitation, Membership
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import Access, account_object_or_404
from clientarea.accounts.scope import SCOPE_KINDS
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.selectors import email_history_for
from clientarea.security.throttle import THROTTLED_MESSAGE, throttle_consume

from . import views
from .access import token_access, token_owner_rule, token_rule
from .pagination import IdCursorPagination, paginated
from .responses import COMMON_ERRORS, ITEM_ERRORS, ActionRefused, object_pk, problem_doc
from .serializers import AccountSerializer
from .serializers_people import (
    ContactPatchSerializer,
    ContactSerializer,
    ContactWriteSerializer,
    EmailDetailSerializer,
    EmailSerializer,
    GrantSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    ProfileUpdateSerializer,
    UserSerializer,
)

BAD_INPUT = {400: problem_doc("Bad input: the fields and why, as the page says it.")}
LIST_ERRORS = {400: problem_doc("A bad page size or cursor."), **COMMON_ERRORS}
OWNER_403 = problem_doc(
    "The token does not carry the Users power: only a token its creator made as the "
    "account's owner, choosing Manage users and invitations, manages users."
)
OWNER_ITEM_ERRORS = {
    403: OWNER_403,
    404: problem_doc("No such object on the token's account."),
    **COMMON_ERRORS,
}
INVITE_SENT_LIMIT = 3600  # seconds a script is told to wait once invitations are throttled


class NewestFirstPagination(IdCursorPagination):
    """Email History: newest first, by id (unique and unchanging)."""

    ordering = "-id"


def _form_errors(
    form: BaseForm, rename: dict[str, str] | None = None
) -> exceptions.ValidationError:
    """A page form's errors as the API's 400: the same sentences, by the API's field names."""
    rename = rename or {}
    errors: dict[str, list[str]] = {}
    for field, messages in form.errors.items():
        name = "non_field_errors" if field == "__all__" else rename.get(field, field)
        if name.startswith("scope_"):
            name = "scope"
        errors.setdefault(name, []).extend(str(m) for m in messages)
    return exceptions.ValidationError(errors)


def _refused(call: Callable[[], Any]) -> Any:
    """A people service function, its refusals as the API's problems: the policy's own
    (``AccessOutOfReach`` 404, ``AccessNotPermitted`` 403) pass through; any other
    refusal is a 400 with the page's sentence."""
    try:
        return call()
    except (account_services.AccessOutOfReach, account_services.AccessNotPermitted):
        raise
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise exceptions.ValidationError(
                {f: [str(m) for m in msgs] for f, msgs in exc.message_dict.items()}
            ) from None
        raise ActionRefused(" ".join(exc.messages)) from None
    except (
        account_services.AccessError,
        account_services.ContactError,
        account_services.InvitationError,
    ) as exc:
        raise ActionRefused(str(exc)) from None


# --- the account's profile ----------------------------------------------------------------


class AccountProfileView(views.AccountPathAllow):
    access_rule = token_rule(Perm.PROFILE)

    @extend_schema(
        operation_id="account_update",
        summary="Change the account's profile (company and address details)",
        description=(
            "Only the fields sent change, each checked as on the Account Profile page (the "
            "country a code, the VAT number valid for the country the account will have). "
            "Recorded in the Activity Log. Answers the account as GET does."
        ),
        request=ProfileUpdateSerializer,
        responses={
            200: AccountSerializer,
            **BAD_INPUT,
            403: problem_doc("The token does not carry profile."),
            **COMMON_ERRORS,
        },
    )
    def patch(self, request: Request) -> Response:
        access = token_access(request)
        body = ProfileUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = Account.objects.get(pk=access.account.pk)
        data = {f: str(getattr(account, f)) for f in account_services.PROFILE_FIELDS}
        data.update(body.validated_data)
        # The page's own form, on a copy: a refused value never lingers on the account.
        form = AccountProfileForm(data, instance=Account.objects.get(pk=account.pk))
        if not form.is_valid():
            raise _form_errors(form)
        _refused(
            lambda: account_services.account_update_profile(
                account=account,
                access=access,
                data={f: form.cleaned_data[f] for f in account_services.PROFILE_FIELDS},
                request=request._request,
            )
        )
        access.account.refresh_from_db()  # the answer shows the profile as saved
        return views.AccountView().get(request)


_account_read = views.AccountView.as_view()
_account_update = AccountProfileView.as_view()


@csrf_exempt
def account_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """``/api/v1/account``: GET reads (``views.AccountView``, any token), PATCH changes
    the profile (``AccountProfileView``, token:profile), each view with its own rule."""
    view = _account_update if request.method == "PATCH" else _account_read
    return view(request, *args, **kwargs)


# The schema and the route table read the GET view's (the PATCH row is api:account_update).
account_view.cls = views.AccountView  # type: ignore[attr-defined]
account_view.initkwargs = {}  # type: ignore[attr-defined]
account_view.access_rule = views.AccountView.access_rule  # type: ignore[attr-defined]


# --- contacts ---------------------------------------------------------------------------


def _contact(access: Access, pk: int) -> Contact:
    return account_object_or_404(
        Contact.objects.select_related("account__owner"), access.account, pk=object_pk(pk)
    )


def _contact_form(access: Access, data: dict[str, Any], instance: Contact | None) -> ContactForm:
    form = ContactForm(
        data,
        instance=instance,
        account_id=access.account.pk,
        grantable_kinds=account_services.contact_kinds_for(account=access.account, access=access),
    )
    if not form.is_valid():
        raise _form_errors(form)
    return form


class ContactListView(APIView):
    access_rule = token_rule(Perm.CONTACTS)
    pagination_class = IdCursorPagination

    @extend_schema(
        operation_id="contacts_list",
        summary="The account's secondary contacts, by id",
        responses={
            200: ContactSerializer(many=True),
            403: problem_doc("The token does not carry contacts."),
            **LIST_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        rows = account_selectors.contact_list_for(access.account)
        return paginated(self, request, rows, ContactSerializer)

    @extend_schema(
        operation_id="contacts_create",
        summary="Add a secondary contact (its address is sent a confirmation link)",
        description=(
            "As on the Contacts page: the kinds of email chosen must be kinds the token's "
            "access reads itself; the address receives nothing until its holder confirms "
            "it from the link emailed to it."
        ),
        request=ContactWriteSerializer,
        responses={
            201: ContactSerializer,
            **BAD_INPUT,
            403: problem_doc("The token does not carry contacts."),
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        access = token_access(request)
        body = ContactWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = _contact_form(access, dict(body.validated_data), None)
        contact = _refused(
            lambda: account_services.contact_create(
                account=access.account,
                access=access,
                data=form.cleaned_data,
                request=request._request,
            )
        )
        return Response(ContactSerializer(contact).data, status=201)


class ContactDetailView(APIView):
    access_rule = token_rule(Perm.CONTACTS)

    @extend_schema(
        operation_id="contacts_read",
        summary="One secondary contact",
        responses={200: ContactSerializer, **ITEM_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ContactSerializer(_contact(token_access(request), pk)).data)

    @extend_schema(
        operation_id="contacts_update",
        summary="Change a secondary contact (a new address is confirmed again)",
        description=(
            "Only the fields sent change. Kinds the token's access does not read stay as "
            "they are; moving an address that receives them is the owner's decision."
        ),
        request=ContactPatchSerializer,
        responses={200: ContactSerializer, **BAD_INPUT, **ITEM_ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        contact = _contact(access, pk)
        body = ContactPatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = {
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "email_kinds": list(contact.email_kinds or []),
            **body.validated_data,
        }
        form = _contact_form(access, data, Contact.objects.get(pk=contact.pk))
        saved = _refused(
            lambda: account_services.contact_update(
                contact=contact, access=access, data=form.cleaned_data, request=request._request
            )
        )
        return Response(ContactSerializer(saved).data)

    @extend_schema(
        operation_id="contacts_delete",
        summary="Remove a secondary contact",
        responses={204: None, **ITEM_ERRORS},
    )
    def delete(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        contact = _contact(access, pk)
        _refused(
            lambda: account_services.contact_delete(
                contact=contact, access=access, request=request._request
            )
        )
        return Response(status=204)


class ContactConfirmationView(APIView):
    access_rule = token_rule(Perm.CONTACTS)

    @extend_schema(
        operation_id="contacts_confirmation_resend",
        summary="Send the contact a new confirmation link (the old one stops working)",
        request=None,
        responses={
            200: ContactSerializer,
            400: problem_doc("Already confirmed, or too many confirmation emails lately."),
            **ITEM_ERRORS,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        contact = _contact(access, pk)
        sent = _refused(
            lambda: account_services.contact_confirmation_resend(
                contact=contact, access=access, request=request._request
            )
        )
        return Response(ContactSerializer(sent).data)


# --- Email History ----------------------------------------------------------------------


class EmailListView(APIView):
    access_rule = token_rule(Perm.EMAILS)
    pagination_class = NewestFirstPagination

    @extend_schema(
        operation_id="emails_list",
        summary="Email History: the account's emails the token's access reads, newest first",
        responses={
            200: EmailSerializer(many=True),
            403: problem_doc("The token does not carry emails."),
            **LIST_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        rows = email_history_for(access).defer("body_text", "body_after_send")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        context = {"sees_contacts": access.has(Perm.CONTACTS)}
        return paginator.get_paginated_response(
            EmailSerializer(page, many=True, context=context).data
        )


class EmailDetailView(APIView):
    access_rule = token_rule(Perm.EMAILS)

    @extend_schema(
        operation_id="emails_read",
        summary="One email of Email History, with its text as the page shows it",
        responses={200: EmailDetailSerializer, **ITEM_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        email: OutboxEmail = account_object_or_404(
            email_history_for(access), access.account, pk=object_pk(pk)
        )
        context = {"sees_contacts": access.has(Perm.CONTACTS)}
        return Response(EmailDetailSerializer(email, context=context).data)


# --- users and invitations (a token with the owner's Users power) ---------------------------


def _grant_data(body: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON grant as the User Management form's fields (the page's checks then
    apply as they are); `base`: the current grant's, for what the body leaves out."""
    data: dict[str, Any] = dict(base or {})
    if "permissions" in body:
        data["access"] = CHOOSE
        data["permissions"] = list(body["permissions"])
    if "scope" in body:
        scope = body["scope"]
        data["scope_mode"] = SCOPE_ALL if scope is None else SCOPE_ONLY
        for kind in SCOPE_KINDS:
            data[scope_field_name(kind)] = [str(i) for i in (scope or {}).get(kind, [])]
    if "access_expires_on" in body:
        day = body["access_expires_on"]
        data["access_expires_on"] = day.isoformat() if day else ""
    return data


GRANT_FIELDS = {"access": "permissions"}


def _membership(access: Access, pk: int) -> Membership:
    return account_object_or_404(
        Membership.objects.select_related("user", "account__owner"),
        access.account,
        pk=object_pk(pk),
    )


def _invitation(access: Access, pk: int) -> Invitation:
    return account_object_or_404(
        Invitation.objects.select_related("account__owner", "invited_by"),
        access.account,
        pk=object_pk(pk),
    )


def _invite_throttled(account: Account) -> None:
    """Invitations sent are limited per account, as from the page."""
    if not throttle_consume(scope="invite-send", key=account.pk):
        raise exceptions.Throttled(wait=INVITE_SENT_LIMIT, detail=THROTTLED_MESSAGE)


class UserListView(APIView):
    access_rule = token_owner_rule()
    pagination_class = IdCursorPagination

    @extend_schema(
        operation_id="users_list",
        summary="The account's sub-accounts (any status), by id",
        responses={200: UserSerializer(many=True), 403: OWNER_403, **LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        rows = account_selectors.membership_list_for(access.account)
        return paginated(self, request, rows, UserSerializer)


class UserDetailView(APIView):
    access_rule = token_owner_rule()

    @extend_schema(
        operation_id="users_update",
        summary="Change a sub-account's permissions, scope or access expiry",
        description=(
            "Only the fields sent change, checked as on the User Management page; the "
            "person is emailed and the change recorded in the Activity Log."
        ),
        request=GrantSerializer,
        responses={200: UserSerializer, **BAD_INPUT, **OWNER_ITEM_ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        membership = _membership(access, pk)
        body = GrantSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        base = MembershipForm.for_membership(membership).initial
        base = {k: v for k, v in base.items() if v is not None}
        form = MembershipForm(
            _grant_data(dict(body.validated_data), base), account=membership.account
        )
        if not form.is_valid():
            raise _form_errors(form, GRANT_FIELDS)
        saved = _refused(
            lambda: account_services.membership_update(
                membership=membership,
                access=access,
                permission_codes=form.permission_codes,
                expires_at=form.access_expires_at,
                scope=form.scope,
                request=request._request,
            )
        )
        return Response(UserSerializer(saved).data)

    @extend_schema(
        operation_id="users_revoke",
        summary="Revoke a sub-account's access at once (their tokens die with it)",
        responses={204: None, 400: problem_doc("No longer a sub-account."), **OWNER_ITEM_ERRORS},
    )
    def delete(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        membership = _membership(access, pk)
        _refused(
            lambda: account_services.membership_revoke(
                membership=membership, access=access, request=request._request
            )
        )
        return Response(status=204)


class InvitationListView(APIView):
    access_rule = token_owner_rule()
    pagination_class = IdCursorPagination

    @extend_schema(
        operation_id="invitations_list",
        summary="Invitations waiting for an answer (their link lapsed or not), by id",
        description="Never the link or any secret of it.",
        responses={200: InvitationSerializer(many=True), 403: OWNER_403, **LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        rows = account_selectors.invitation_pending_list_for(access.account)
        return paginated(self, request, rows, InvitationSerializer)

    @extend_schema(
        operation_id="invitations_create",
        summary="Invite a person by email, with these permissions and scope",
        description=(
            "Checked as on Invite a New User; the invitation is emailed to the address "
            "(its link is never answered here). Limited per account: 429 with Retry-After."
        ),
        request=InvitationCreateSerializer,
        responses={201: InvitationSerializer, **BAD_INPUT, 403: OWNER_403, **COMMON_ERRORS},
    )
    def post(self, request: Request) -> Response:
        access = token_access(request)
        body = InvitationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = _grant_data(dict(body.validated_data), {"access": CHOOSE, "scope_mode": SCOPE_ALL})
        data["email"] = body.validated_data["email"]
        account = access.account
        form = InviteForm(data, account=account)
        if not form.is_valid():
            raise _form_errors(form, GRANT_FIELDS)
        _invite_throttled(account)
        invitation = _refused(
            lambda: account_services.invitation_create(
                account=account,
                access=access,
                email=form.cleaned_data["email"],
                permission_codes=form.permission_codes,
                access_expires_at=form.access_expires_at,
                scope=form.scope,
                request=request._request,
            )
        )
        return Response(InvitationSerializer(invitation).data, status=201)


class InvitationDetailView(APIView):
    access_rule = token_owner_rule()

    @extend_schema(
        operation_id="invitations_cancel",
        summary="Cancel an invitation (its link stops working)",
        responses={
            204: None,
            400: problem_doc("Already accepted or cancelled."),
            **OWNER_ITEM_ERRORS,
        },
    )
    def delete(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        invitation = _invitation(access, pk)
        _refused(
            lambda: account_services.invitation_cancel(
                invitation=invitation, access=access, request=request._request
            )
        )
        return Response(status=204)


class InvitationResendView(APIView):
    access_rule = token_owner_rule()

    @extend_schema(
        operation_id="invitations_resend",
        summary="Email a new link, valid 7 days (the old one stops working)",
        request=None,
        responses={
            200: InvitationSerializer,
            400: problem_doc("Accepted or cancelled, or the person has access already."),
            **OWNER_ITEM_ERRORS,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        invitation = _invitation(access, pk)
        _invite_throttled(access.account)
        sent = _refused(
            lambda: account_services.invitation_resend(
                invitation=invitation, access=access, request=request._request
            )
        )
        return Response(InvitationSerializer(sent).data)
