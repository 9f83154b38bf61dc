"""The API's endpoints for tickets, replies and attachments (included by ``urls.py``
under ``v1/``)."""

from django.urls import URLPattern, path

from . import views_support

urlpatterns: list[URLPattern] = [
    path("tickets", views_support.TicketListView.as_view(), name="ticket_list"),
    path("tickets/<int:pk>", views_support.TicketDetailView.as_view(), name="ticket_detail"),
    path("tickets/<int:pk>/replies", views_support.TicketReplyView.as_view(), name="ticket_reply"),
    path("tickets/<int:pk>/close", views_support.TicketCloseView.as_view(), name="ticket_close"),
    path(
        "tickets/attachments/<int:pk>",
        views_support.AttachmentDownloadView.as_view(),
        name="ticket_attachment",
    ),
]
