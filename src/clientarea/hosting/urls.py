from django.urls import path

from . import views

app_name = "hosting"

urlpatterns = [
    path("", views.service_list, name="list"),
    path("<int:pk>/", views.service_detail, name="detail"),
    path("<int:pk>/password/reveal/", views.service_password_reveal, name="password_reveal"),
    path("<int:pk>/password/change/", views.service_password_change, name="password_change"),
    path("<int:pk>/panel/login/", views.service_panel_login, name="panel_login"),
    path("<int:pk>/panel/demo/", views.service_panel_demo, name="panel_demo"),
]
