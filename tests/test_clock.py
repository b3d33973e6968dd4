"""PhaseClock: a stopped process's stop is counted apart from its phase's seconds."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from emreason.clock import PhaseClock

# A child that times 3 s of sleeping in two laps with a fast tick, printing each lap.
CHILD = """
import json, sys, time
from emreason.clock import PhaseClock
with PhaseClock(tick=0.05, min_gap=0.5) as clock:
    print("ready", flush=True)
    time.sleep(3.0)
    first = clock.lap()
    time.sleep(0.5)
    second = clock.lap()
print(json.dumps([first, second]), flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")
def test_a_stopped_process_counts_its_stop_apart():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(2.0)
        os.kill(child.pid, signal.SIGCONT)
        (s1, cpu1, p1), (s2, cpu2, p2) = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
    # lap 1: 3 s of wall clock (sleep keeps its deadline through a stop), ~2 s of them stopped
    assert 1.7 <= p1 <= 2.6, p1
    assert 0.5 <= s1 <= 1.4 and 2.9 <= s1 + p1 <= 3.6, (s1, p1)
    assert p2 == 0 and 0.4 <= s2 <= 1.0, (s2, p2)
    assert cpu1 < 1.0 and cpu2 < 1.0  # asleep: next to no CPU


def test_laps_split_the_time_and_a_running_process_pauses_nothing():
    with PhaseClock(tick=0.02, min_gap=0.5) as clock:
        time.sleep(0.2)
        a = clock.lap()
        sum(i * i for i in range(300_000))  # busy: the clock's thread still wakes
        b = clock.lap()
    assert a[2] == 0 and b[2] == 0
    assert 0.15 <= a[0] < 1.0 and b[1] > 0


def test_a_late_wake_up_beyond_the_gap_is_a_stop(monkeypatch):
    """The gap rule without signals: the clock reads 10 s later than one tick after its last wake-up."""
    now = [100.0]
    monkeypatch.setattr("emreason.clock.time.monotonic", lambda: now[0])
    clock = PhaseClock(tick=1.0, min_gap=5.0)  # not started: the test drives its wake-ups
    now[0] += 1.0
    clock._wake()
    now[0] += 11.0  # stopped ~10 s
    seconds, _, paused = clock.lap()
    assert paused == pytest.approx(10.0) and seconds == pytest.approx(2.0)
    now[0] += 4.0  # late by 3 s: under min_gap, a busy scheduler, not a stop
    seconds, _, paused = clock.lap()
    assert paused == 0 and seconds == pytest.approx(4.0)
