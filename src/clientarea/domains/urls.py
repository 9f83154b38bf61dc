from django.urls import path

from . import views

app_name = "domains"

urlpatterns = [
    path("", views.domain_list, name="list"),
    path("<int:pk>/", views.domain_detail, name="detail"),
    path("<int:pk>/nameservers/", views.domain_nameservers, name="nameservers"),
    path("<int:pk>/registrar-lock/", views.domain_registrar_lock, name="registrar_lock"),
    path("<int:pk>/auto-renew/", views.domain_auto_renew, name="auto_renew"),
    path("<int:pk>/renew/", views.domain_renew, name="renew"),
]
