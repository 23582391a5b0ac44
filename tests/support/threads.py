"""Code run in threads side by side, as the local stack runs concurrent invocations in one process."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def side_by_side(work: Callable[[int], None], count: int, switch_interval: float = 1e-6) -> None:
    """work(0) … work(count - 1) in threads at once, the interpreter switching between them as often as it can,
    so that races on shared state show in one run; returns when all have finished."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
