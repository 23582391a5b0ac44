"""`python -m devstack` waits until it is asked to stop or its AWS emulator has ended, and tells the two apart."""

from __future__ import annotations

import threading

import pytest

import devstack.__main__ as main


class Stack:
    """A stack whose emulator ends at the n-th check, optionally with the stop request it was ended by just behind."""

    def __init__(self, stopping: threading.Event, ends_at_check: int | None, stop_request_after: float | None) -> None:
        self._stopping = stopping
        self._ends_at_check = ends_at_check
        self._stop_request_after = stop_request_after
        self.checks = 0

    def fault(self) -> str | None:
        self.checks += 1
        if self._ends_at_check is None or self.checks < self._ends_at_check:
            return None
        if self.checks == self._ends_at_check and self._stop_request_after is not None:
            threading.Timer(self._stop_request_after, self._stopping.set).start()
        return "the AWS emulator ended"


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "FAULT_CHECK_SECONDS", 0.01)


def test_an_emulator_that_ends_on_its_own_is_a_fault() -> None:
    stopping = threading.Event()
    stack = Stack(stopping, ends_at_check=3, stop_request_after=None)

    assert main.wait_for_stop_or_fault(stack, stopping) == "the AWS emulator ended"
    assert stack.checks == 3


def test_an_emulator_ended_by_the_signal_that_stops_the_stack_is_a_stop_even_when_its_end_is_seen_first() -> None:
    # `kill -- -PGID`: the emulator's end can be seen just before this process's own handler of the signal has run
    stopping = threading.Event()
    stack = Stack(stopping, ends_at_check=2, stop_request_after=0.05)

    assert main.wait_for_stop_or_fault(stack, stopping) is None


def test_a_stop_request_ends_the_wait_with_no_fault() -> None:
    stopping = threading.Event()
    threading.Timer(0.05, stopping.set).start()

    assert main.wait_for_stop_or_fault(Stack(stopping, ends_at_check=None, stop_request_after=None), stopping) is None
