#!/bin/sh
# Run once per deployment, before the app processes and workers start (the compose
# file's `release` service): the schema, the static files, the audit partitions.
set -eu
python manage.py migrate --noinput
python manage.py collectstatic --noinput -v0
# PostgreSQL: audit events partitioned by month (idempotent: later runs only add the
# months ahead; the workers' housekeeping keeps adding them too).
python manage.py audit_partition
python manage.py check --deploy --fail-level ERROR
