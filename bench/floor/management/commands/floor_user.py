"""`floor_user EMAIL PASSWORD`: the floor's one login (made again if it exists)."""

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset) the floor's login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("password")

    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
