from typing import Any

from django.core.management.base import BaseCommand

from clientarea.core.demo import DEMO_LOGINS_TEXT, DEMO_PASSWORD, demo_exists, demo_load


class Command(BaseCommand):
    help = "Load the demo data (does nothing if it is already loaded) and print the logins."

    def handle(self, *args: Any, **options: Any) -> None:
        if demo_exists():
            self.stdout.write("Demo data already loaded.")
        else:
            demo_load()
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self.stdout.write(DEMO_LOGINS_TEXT.format(password=DEMO_PASSWORD))
