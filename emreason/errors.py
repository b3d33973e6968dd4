"""The one exception type a user is meant to read.

Anything raised as `EmreasonError` is a problem the user can fix (a missing file, a bad field, an
unknown alias). The CLI prints its message on one line and exits non-zero, without a traceback;
any other exception is a bug in emreason and keeps its traceback.
"""


class EmreasonError(Exception):
    """A user-fixable problem. The message names the file/line or field and the fix."""
