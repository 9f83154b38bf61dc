"""deploy/compose.yaml (docs/deploy.md) runs only what the project has: Docker is not
needed to check that every command it starts exists (manage.py commands in Django's
registry, the gunicorn config, scripts, Makefile targets), every file it builds from or
mounts is in the repository, and every variable it gives the app is one the project
reads. Parsed with PyYAML, as Compose reads it (anchors and merge keys included)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[4]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _app_services() -> dict[str, dict[str, Any]]:
    """The services that run the project's image (built from the repository)."""
    return {name: s for name, s in _services().items() if "build" in s}


def _read_variables() -> set[str]:
    """Every environment variable the project's code reads (settings, gunicorn config,
    manage.py), found in the source as django-environ or os.environ reads."""
    pattern = re.compile(
        r"""(?:\benv(?:\.\w+)?\(\s*|os\.environ\.(?:get|setdefault)\(\s*|"""
        r"""os\.environ\[\s*|os\.getenv\(\s*)["']([A-Z][A-Z0-9_]*)["']"""
    )
    names: set[str] = set()
    files = [ROOT / "manage.py", *(ROOT / "src").rglob("*.py")]
    for path in files:
        if "tests" in path.parts:
            continue
        names.update(pattern.findall(path.read_text()))
    return names


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, flags=re.MULTILINE))


def _check_command(words: list[str], where: str) -> None:
    """One command line as the image runs it (working directory: the repository's root)."""
    if words[:2] == ["python", "manage.py"]:
        assert words[2] in get_commands(), f"{where}: no manage.py command {words[2]!r}"
    elif words[0] == "gunicorn":
        config = words[words.index("-c") + 1]
        assert (ROOT / config).is_file(), f"{where}: no gunicorn config {config}"
    elif words[0] == "sh":
        script = ROOT / words[1]
        assert script.is_file(), f"{where}: no script {words[1]}"
        for line in script.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "set ")):
                _check_command(shlex.split(line), f"{words[1]}")
    elif words[0] == "make":
        assert words[1] in _makefile_targets(), f"{where}: no Makefile target {words[1]}"
    else:
        pytest.fail(f"{where}: {words[0]!r} is not a command the project provides")


def test_every_command_the_compose_file_starts_exists_in_the_project() -> None:
    services = _app_services()
    assert services
    for name, service in services.items():
        _check_command(list(service["command"]), f"service {name}")


def test_it_starts_the_deployment_the_docs_describe() -> None:
    services = _services()
    commands = {name: " ".join(s.get("command", [])) for name, s in services.items()}
    apps = [n for n, c in commands.items() if c.startswith("gunicorn")]
    workers = [n for n, c in commands.items() if c.endswith("manage.py run_worker")]
    assert len(apps) == 2 and len(workers) == 2
    assert services["postgres"]["image"].startswith("postgres:")
    assert "mailpit" in services["mailpit"]["image"]
    assert services["proxy"]["image"].startswith("caddy:")
    # Every service named in depends_on is defined.
    for name, service in services.items():
        assert set(service.get("depends_on", [])) <= set(services), name
    # The proxy balances over exactly the app processes, and the app believes only the
    # proxy's X-Forwarded-For (TRUSTED_PROXIES is the proxy's fixed address).
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile)
    assert upstreams is not None
    assert sorted(u.split(":")[0] for u in upstreams.group(1).split()) == sorted(apps)
    proxy_address = services["proxy"]["networks"]["backend"]["ipv4_address"]
    for name in apps:
        assert services[name]["environment"]["TRUSTED_PROXIES"] == proxy_address
    # The app's email goes to the SMTP catcher, its database to the PostgreSQL service.
    env = services[apps[0]]["environment"]
    assert env["EMAIL_URL"].startswith("smtp://mailpit:")
    assert "@postgres:5432/" in env["DATABASE_URL"]


def test_production_is_the_default_and_images_are_pinned() -> None:
    """A copy that never sets DEMO_MODE runs as production (the stand-ins refused), and a
    trial is an explicit opt-in; the SMTP catcher is a released version, not ``latest``."""
    for name, service in _app_services().items():
        demo = str(service["environment"]["DEMO_MODE"])
        # Unset or empty in deploy/.env: Compose substitutes the default after ":-".
        default = re.fullmatch(r"\$\{DEMO_MODE:-(\w*)\}", demo)
        assert default is not None, f"service {name}: DEMO_MODE={demo}"
        assert default.group(1).lower() in {"", "false", "0", "no", "off"}, name
    example = (DEPLOY / "env.example").read_text()
    settings = dict(
        line.split("=", 1) for line in example.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings.get("DEMO_MODE", "false").lower() == "false"
    for name, service in _services().items():
        image = service.get("image", "")
        if "build" in service:
            continue  # the project's own image, built here
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image), f"{name}: {image} has no version"
    assert re.fullmatch(r"axllent/mailpit:v1\.\d+(\.\d+)?", _services()["mailpit"]["image"])


def test_every_variable_given_to_the_app_is_one_the_project_reads() -> None:
    read = _read_variables()
    for name, service in _app_services().items():
        given = set(service.get("environment", {}))
        assert given - read == set(), f"service {name} sets variables nothing reads"
        module = service["environment"]["DJANGO_SETTINGS_MODULE"]
        assert importlib.util.find_spec(module) is not None, module
    # The variables the Dockerfile sets too.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for block in re.findall(r"^ENV (.+?)(?<!\\)$", dockerfile, flags=re.MULTILINE | re.DOTALL):
        names = re.findall(r"([A-Z][A-Z0-9_]*)=", block)
        assert (
            set(names)
            - read
            - {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
            - {"PIP_DISABLE_PIP_VERSION_CHECK"}
            == set()
        ), block


def test_every_file_it_builds_from_or_mounts_is_in_the_repository() -> None:
    for name, service in _services().items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, name
            dockerfile = context / build["dockerfile"]
            assert dockerfile.is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):  # a bind mount (others are named volumes)
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in _compose()["volumes"], f"{name}: volume {source}"
    # What the Dockerfile copies, from the repository's root (the build context).
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.MULTILINE):
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd is not None
    _check_command(yaml.safe_load(cmd.group(1)), "Dockerfile CMD")


def test_the_docs_describe_the_compose_file() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "deploy/compose.yaml" in docs
    for word in ("TRUSTED_PROXIES", "DATABASE_TRANSACTION_POOLING", "audit_partition"):
        assert word in docs
