from django.urls import path

from . import views

app_name = "support"

urlpatterns = [
    path("", views.ticket_list, name="ticket_list"),
    path("new/", views.ticket_open, name="ticket_open"),
    path("<int:pk>/", views.ticket_detail, name="ticket_detail"),
    path("<int:pk>/reply/", views.ticket_reply, name="ticket_reply"),
    path("<int:pk>/close/", views.ticket_close, name="ticket_close"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment_download"),
]
