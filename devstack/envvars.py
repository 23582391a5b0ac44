"""env.json for `sam local start-api --env-vars`: each function's template variables with local values.

SAM CLI only overrides variables the template declares, so the file holds exactly those. The functions run in
Docker there: the emulator's 127.0.0.1 becomes host.docker.internal.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.template import SamApp

DOCKER_HOST = "host.docker.internal"
LOOPBACK = {"127.0.0.1", "localhost", "0.0.0.0"}


def for_container(value: str, docker_host: str = DOCKER_HOST) -> str:
    """A URL on this machine as a container sees it; anything else unchanged."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname in LOOPBACK:
        netloc = docker_host + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def env_vars(
    sam_app: SamApp, overrides: dict[str, str] | None = None, docker_host: str = DOCKER_HOST
) -> dict[str, dict[str, str]]:
    """{function: {variable: value}} for every variable each function declares in the template."""
    overrides = overrides or {}
    return {
        name: {key: for_container(overrides.get(key, value), docker_host) for key, value in spec.environment.items()}
        for name, spec in sorted(sam_app.functions.items())
    }


def write_env_vars(path: str | Path, sam_app: SamApp, overrides: dict[str, str] | None = None) -> Path:
    target = Path(path)
    target.write_text(json.dumps(env_vars(sam_app, overrides), indent=2, sort_keys=True) + "\n")
    return target
