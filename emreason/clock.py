"""A phase's clock: wall and CPU seconds, less the time its process sat stopped.

A phase's seconds are cost evidence (the report's cost table, `emreason status`'s estimates). A
process stopped by SIGSTOP or SIGTSTP (`kill -STOP`, Ctrl-Z, a scheduler suspending a job, as
Slurm's `scontrol suspend` does) keeps its wall clock running, so the stop would be billed to the
phase: in the study, a 0.5B evaluation recorded 1,788 s of which 553 s were a pause for CI. A daemon
thread that wakes every `tick` seconds sees a stop as a gap between two of its wake-ups; a gap
longer than `min_gap` is counted apart, as paused seconds, and left out of the phase's seconds.
"""

from __future__ import annotations

import threading
import time


class PhaseClock:
    """`with PhaseClock() as clock:` ... `clock.lap()` -> (seconds, cpu_seconds, paused_seconds)
    since the previous lap (or the start). Stops shorter than `min_gap` are not told apart from a
    busy scheduler, so they stay in the seconds; CPU seconds are this process's, all its threads."""

    def __init__(self, tick: float = 1.0, min_gap: float = 5.0):
        self.tick, self.min_gap = tick, min_gap
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_wake = self._lap_wall = time.monotonic()
        self._lap_cpu = time.process_time()
        self._paused = 0.0  # since the last lap

    def _wake(self) -> None:
        """Count the time since the last wake-up beyond one tick as a stop, when it is long."""
        with self._lock:
            now = time.monotonic()
            late = now - self._last_wake - self.tick
            if late > self.min_gap:
                self._paused += late
            self._last_wake = now

    def _run(self) -> None:
        while not self._done.wait(self.tick):
            self._wake()

    def start(self) -> PhaseClock:
        self._last_wake = self._lap_wall = time.monotonic()
        self._lap_cpu = time.process_time()
        self._paused = 0.0
        self._done.clear()
        self._thread = threading.Thread(target=self._run, name="emreason-phase-clock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> PhaseClock:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def lap(self) -> tuple[float, float, float]:
        """Seconds (wall, less stops), CPU seconds and paused seconds since the previous lap."""
        self._wake()  # a stop that ended after the thread's last wake-up
        with self._lock:
            now, cpu = time.monotonic(), time.process_time()
            paused = self._paused
            wall = now - self._lap_wall
            self._lap_wall, self._lap_cpu, cpu_used, self._paused = now, cpu, cpu - self._lap_cpu, 0.0
        return max(wall - paused, 0.0), cpu_used, paused
