"""User-facing errors: one line naming the problem and the fix, exit status 2, no traceback."""


class UserError(Exception):
    """A mistake in what the user typed or pointed us to (a flag, a path, a file).

    Entry points catch it, print ``error: <message>`` on one line and exit with status 2;
    ``--debug`` shows the traceback instead. The message must name the flag or file and say
    what to do about it.
    """
