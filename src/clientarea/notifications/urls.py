from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("", views.history, name="history"),
    path("<int:email_id>/", views.history_detail, name="history_detail"),
]
