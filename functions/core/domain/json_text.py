"""JSON as RFC 8259 has it: Python's json also reads NaN and Infinity, which are not JSON."""

from __future__ import annotations

import json
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str | bytes) -> Any:
    """The JSON value of `text`; ValueError (or RecursionError, nested too deep) when it is not JSON."""
    return json.loads(text, parse_constant=_refuse_constant)
