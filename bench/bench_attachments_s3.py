"""Ticket attachments on S3-compatible storage: requests and time per upload and download,
against a local S3 server (moto's server mode on a loopback port), beside the local disk,
in the same run.

    .venv/bin/python bench/bench_attachments_s3.py      (BENCH_FILES, BENCH_KB to change)

What it shows: how many requests the store gets for one upload (a HEAD, so that no name
is ever overwritten, then the PUT) and one download (a single GET), and the median time
of each through the storage the app uses. The local server answers in well under a
millisecond of network, so the times are the client's own cost; add the real store's
round trips to them.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench-key")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_name, None)

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

import boto3  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import FileSystemStorage, Storage  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from clientarea.support.models import attachment_path  # noqa: E402
from clientarea.support.storage import S3AttachmentStorage  # noqa: E402

FILES = int(os.environ.get("BENCH_FILES", "50"))
SIZE = int(os.environ.get("BENCH_KB", "500")) * 1024
BUCKET = "bench-attachments"


def measure(storage: Storage, sent: list[str]) -> dict[str, tuple[float, list[str]]]:
    """Median seconds and the requests sent, per upload and per download."""
    data = os.urandom(SIZE)
    names: list[str] = []
    times: dict[str, list[float]] = {"upload": [], "download": []}
    requests: dict[str, list[str]] = {}
    mark = len(sent)
    for _ in range(FILES):
        start = time.perf_counter()
        names.append(storage.save(attachment_path(None, "shot.png"), ContentFile(data)))  # type: ignore[arg-type]
        times["upload"].append(time.perf_counter() - start)
    requests["upload"], mark = sent[mark:], len(sent)
    for name in names:
        start = time.perf_counter()
        with storage.open(name) as file:
            assert file.read() == data
        times["download"].append(time.perf_counter() - start)
    requests["download"] = sent[mark:]
    return {op: (statistics.median(times[op]), requests[op]) for op in times}


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    s3 = S3AttachmentStorage(bucket_name=BUCKET, endpoint_url=endpoint, region_name="us-east-1")
    sent: list[str] = []
    s3.connection.meta.client.meta.events.register(
        "before-send.s3", lambda request, **kw: sent.append(request.method)
    )
    on_s3 = measure(s3, sent)
    server.stop()
    with tempfile.TemporaryDirectory(prefix="clientarea-bench-media-") as media:
        on_disk = measure(FileSystemStorage(location=media), [])

    print(f"{FILES} files of {SIZE // 1024} KB each, through the app's storage classes")
    for op in ("upload", "download"):
        methods = on_s3[op][1]
        kinds = " + ".join(f"{methods.count(m) / FILES:g} {m}" for m in sorted(set(methods)))
        print(f"S3 requests per {op}: {len(methods) / FILES:g} ({kinds})")
    print(f"{'':<12}{'upload ms (median)':>20}{'download ms (median)':>22}")
    for label, result in (("S3 (local)", on_s3), ("local disk", on_disk)):
        print(
            f"{label:<12}{result['upload'][0] * 1000:>20.2f}{result['download'][0] * 1000:>22.2f}"
        )


if __name__ == "__main__":
    main()
