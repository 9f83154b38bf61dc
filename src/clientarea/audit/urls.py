from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.activity, name="activity"),
    path("export.csv", views.activity_export, name="activity_export"),
]
