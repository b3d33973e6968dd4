"""What the user is told: the one exception type they are meant to read, and progress notes.

Anything raised as `EmreasonError` is a problem the user can fix (a missing file, a bad field, an
unknown alias). The CLI prints its message on one line and exits non-zero, without a traceback;
any other exception is a bug in emreason and keeps its traceback.
"""

import sys


def note(msg: str) -> None:
    """A one-line progress note on stderr (stdout stays clean for what a command prints as output)."""
    print(f"[emreason] {msg}", file=sys.stderr, flush=True)


class EmreasonError(Exception):
    """A user-fixable problem. The message names the file/line or field and the fix."""
