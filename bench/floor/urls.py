"""The floor's pages: /login/ (POST email and password: the session the bench uses) and
/, the measured page: a logged-in session, one query, a small template."""

from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Permission
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt  # the bench logs in once by a plain POST; the measured page is a GET
@require_POST
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("Wrong email or password.", status=400)
    login(request, user)
    return HttpResponseRedirect("/")


@login_required
def page(request: HttpRequest) -> HttpResponse:
    rows = Permission.objects.order_by("pk").values_list("pk", "codename")[:10]
    return render(request, "floor/page.html", {"rows": rows})


urlpatterns = [path("login/", login_view), path("", page)]
