"""When a run's progress report is worth a write: every write costs what the task's creation does, so a report is
written at most once a second, and for a task that declares its expected run time only when the end its progress
points to is off the end readers are told (their Retry-After would be wrong), or every half minute. The plain
worker's runs and the durable runner's use the same rules."""

from __future__ import annotations

from core.domain.polling import MIN_PROGRESS_FOR_RATE

PROGRESS_INTERVAL_SECONDS = 1.0
# A task that declares its expected_seconds and runs on schedule writes its progress at most this often: between
# writes, readers are told its end from the declaration (core.domain.polling) as well as from the progress, and each
# write costs as much as the task's creation. It is also how long such a task may run on after a cancel.
ON_SCHEDULE_PROGRESS_INTERVAL_SECONDS = 30.0
# On schedule: the end the progress points to is within this fraction of the run (or a second) of the end readers
# are being told.
SCHEDULE_TOLERANCE = 0.1


class ProgressPacer:
    """One run's progress reports: which of them to write."""

    def __init__(self, started_at: float, expected_seconds: float | None = None) -> None:
        self.started_at = started_at
        # The task's declared run time, once known: progress on schedule need not be written.
        self.expected_seconds = expected_seconds
        self._last_report = started_at
        self._last_written = started_at
        # The run time readers are told (core.domain.polling): the declared one, then the one the last written
        # progress gives.
        self._told_seconds: float | None = None

    def due(self, now: float) -> bool:
        """Whether a report at `now` is looked at at all (at most one a PROGRESS_INTERVAL_SECONDS)."""
        if now - self._last_report < PROGRESS_INTERVAL_SECONDS:
            return False
        self._last_report = now
        return True

    def worth_writing(self, fraction: float, now: float) -> bool:
        """Always for a task that declares no run time; for one that does, only once its progress points to an end
        off the one readers are told, or when ON_SCHEDULE_PROGRESS_INTERVAL_SECONDS have passed since the last
        write."""
        if not self.expected_seconds or self.expected_seconds <= 0:
            return True
        if now - self._last_written >= ON_SCHEDULE_PROGRESS_INTERVAL_SECONDS:
            return True
        if fraction < MIN_PROGRESS_FOR_RATE:
            return False  # no rate yet that readers would believe: the declaration is all they go by
        told = self._told_seconds or self.expected_seconds
        pointed = (now - self.started_at) / fraction
        return abs(pointed - told) > max(PROGRESS_INTERVAL_SECONDS, SCHEDULE_TOLERANCE * told)

    def written(self, fraction: float, now: float) -> None:
        self._last_written = now
        if fraction >= MIN_PROGRESS_FOR_RATE:  # what readers then work the end out from (core.domain.polling)
            self._told_seconds = (now - self.started_at) / fraction


def clamped(fraction: float) -> float:
    return min(max(float(fraction), 0.0), 1.0)
