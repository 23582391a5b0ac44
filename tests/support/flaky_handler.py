"""A handler module that fails at import the first FLAKY_FAILURES times (counted in the file FLAKY_COUNTER), as a
task module does until its author fixes it; for the tests of devstack.environments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_counter = Path(os.environ["FLAKY_COUNTER"])
_imports = int(_counter.read_text()) + 1 if _counter.exists() else 1
_counter.write_text(str(_imports))
if _imports <= int(os.environ["FLAKY_FAILURES"]):
    raise ImportError(f"not yet (import {_imports})")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"pid": os.getpid()}
