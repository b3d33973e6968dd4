"""Graceful stops: a run asked to stop finishes the work in flight, keeps it, and exits.

SIGTERM, SIGUSR1 and a first Ctrl-C (SIGINT) ask `emreason run` to stop at its next safe point:
after the E-step or evaluation chunk in flight, or after the M-step's optimizer step in flight, which
then writes a checkpoint. `--resume` goes on from there. Why: a scheduler warns a job before it kills
it (Slurm sends SIGTERM, then SIGKILL KillWait later, 30 s by default; `sbatch --signal=USR1@300`
warns five minutes ahead), and a kill loses the M-step back to its last periodic checkpoint, which on
2 CPU cores is up to ten 1.5B steps (~10 minutes). A second Ctrl-C stops at once, as Ctrl-C does
elsewhere; a repeated SIGTERM does not (Slurm signals every process of a job, and the loop also
forwards the signal to its M-step's process, so that process may receive it twice).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager

from .errors import EmreasonError, note

SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")
EXIT_STOPPED = 75  # sysexits' EX_TEMPFAIL: stopped on request, resumable; `emreason run` and the M-step's process

_requested: str | None = None  # the first stop signal's name, while handlers are installed
_depth = 0  # nested on_signals() blocks: the outermost installs and restores
_children: list[subprocess.Popen] = []  # processes a stop request is forwarded to


class Stopped(EmreasonError):
    """The run stopped on request at a safe point; `--resume` continues it."""


def requested() -> str | None:
    """The name of the signal that asked for a stop (SIGTERM, ...), or None."""
    return _requested


def check(where: str, asked: str | None = None) -> None:
    """Raise Stopped if a stop was asked for, here or (`asked`: by whom) elsewhere; `where` names
    the safe point for the message."""
    by = _requested or asked
    if by is not None:
        raise Stopped(f"stopped on {by} {where}: run the same command with --resume to go on")


def _handle(signum, frame) -> None:
    global _requested
    if signum == signal.SIGINT and _requested is not None:
        raise KeyboardInterrupt  # the second Ctrl-C (or one after a SIGTERM): stop now
    name = signal.Signals(signum).name
    if _requested is None:
        _requested = name
        again = "; Ctrl-C again stops at once" if signum == signal.SIGINT else ""
        when = time.strftime("%H:%M:%S UTC", time.gmtime())  # in a scheduler's log: when the warning came
        note(f"{name} at {when}: stopping after the chunk or optimizer step in flight (its work is kept){again}")
    if signum != signal.SIGINT:  # a terminal's Ctrl-C reaches the whole process group already
        for child in _children:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGTERM)


@contextmanager
def on_signals():
    """Within the block, the stop signals set requested() instead of killing the process. Installed
    only from the main thread (Python's rule); nested blocks share the outermost's handlers, and
    leaving the outermost restores the previous handlers and forgets the request."""
    global _depth, _requested
    main = threading.current_thread() is threading.main_thread()
    previous = _install() if main and _depth == 0 else {}
    _depth += main
    try:
        yield
    finally:
        _depth -= main
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous:
            _requested = None


def reclaim() -> None:
    """Install the stop handlers again where a library replaced them inside an on_signals() block:
    ray.init sets a SIGTERM handler that exits at once (its atexit hook still shuts Ray down)."""
    if _depth > 0 and threading.current_thread() is threading.main_thread():
        _install()


def _install() -> dict:
    """Point the stop signals at _handle; returns the handlers they had."""
    return {sig: signal.signal(sig, _handle) for sig in (getattr(signal, n, None) for n in SIGNALS) if sig is not None}


@contextmanager
def forwarding(proc: subprocess.Popen):
    """Pass a stop request (SIGTERM, SIGUSR1) on to `proc` while the block runs, as SIGTERM: the
    M-step's process then checkpoints and exits with EXIT_STOPPED, and `accelerate launch`'s agent
    relays SIGTERM to its ranks (SIGUSR1 would kill it). A request that came before the process
    started is passed on at once (a Ctrl-C too). Leaving the block by an exception ends the
    process, so no orphan trains on."""
    _children.append(proc)
    if _requested is not None:  # asked between the loop's last check and the start: the terminal's SIGINT missed it
        os.kill(proc.pid, signal.SIGTERM)
    try:
        yield proc
    except BaseException:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    finally:
        _children.remove(proc)
