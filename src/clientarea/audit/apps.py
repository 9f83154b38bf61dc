from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "clientarea.audit"
    label = "audit"

    def ready(self) -> None:
        from clientarea.core.registry import register_periodic_job

        from .partitioning import partitions_ahead_job

        # PostgreSQL with partitioned audit events (manage.py audit_partition): the
        # coming months' partitions are made ahead; a catalog query when none is missing.
        register_periodic_job("audit.partitions_ahead", partitions_ahead_job)
