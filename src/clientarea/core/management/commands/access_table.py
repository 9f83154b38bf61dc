from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from clientarea.access_table import render_markdown

DOC = Path(settings.BASE_DIR) / "docs" / "access.md"


class Command(BaseCommand):
    help = "Write docs/access.md from the access table, or --check that it is up to date."

    def add_arguments(self, parser: Any) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--write", action="store_true")
        group.add_argument("--check", action="store_true")

    def handle(self, *args: Any, write: bool = False, check: bool = False, **opts: Any) -> None:
        wanted = render_markdown()
        if write:
            DOC.parent.mkdir(exist_ok=True)
            DOC.write_text(wanted)
            self.stdout.write(f"Wrote {DOC.relative_to(settings.BASE_DIR)}")
            return
        if not DOC.exists() or DOC.read_text() != wanted:
            raise CommandError(
                "docs/access.md is stale: run `.venv/bin/python manage.py access_table --write`."
            )
        self.stdout.write("docs/access.md is up to date.")
