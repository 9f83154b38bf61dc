"""manage.py audit_partition [--dry-run] [--months-ahead N]: PostgreSQL only."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clientarea.audit import partitioning


class Command(BaseCommand):
    help = (
        "PostgreSQL: partition the audit events table by month on created_at (the first "
        "time), and make the partitions of the coming months. Safe to run again: it then "
        "only makes the months still missing. --dry-run prints the SQL and changes nothing. "
        "Refused on SQLite."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the SQL it would run; change nothing."
        )
        parser.add_argument(
            "--months-ahead",
            type=int,
            default=partitioning.MONTHS_AHEAD,
            help="Partitions to have ready after this month (default: "
            f"{partitioning.MONTHS_AHEAD}).",
        )

    def handle(
        self, *args: Any, dry_run: bool = False, months_ahead: int = 3, **options: Any
    ) -> None:
        if not 0 <= months_ahead <= 120:
            raise CommandError("--months-ahead must be between 0 and 120.")
        try:
            if dry_run:
                planned = partitioning.plan(months_ahead=months_ahead)
                for sql in planned.statements:
                    self.stdout.write(f"{sql};")
            else:
                planned = partitioning.apply(months_ahead=months_ahead)
        except partitioning.PartitionError as exc:
            raise CommandError(str(exc)) from exc
        made = sum(" PARTITION OF " in s or " ATTACH PARTITION " in s for s in planned.statements)
        if not planned.statements:
            self.stdout.write("The audit events are partitioned by month; nothing is missing.")
        elif dry_run:
            what = "partition the audit events by month" if planned.converting else "add months"
            self.stdout.write(f"-- dry run: would {what} ({made} partitions); nothing changed.")
        elif planned.converting:
            self.stdout.write(
                f"The audit events are now partitioned by month ({made} partitions, with "
                "the default one)."
            )
        else:
            self.stdout.write(f"Made {made} partitions of the coming months.")
