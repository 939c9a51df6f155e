"""The one failure the builder reports to the user as theirs to fix."""

from __future__ import annotations


class BuildError(Exception):
    """The repository, its settings or its build went wrong; the message says what to change.

    The message is one line, shown as the deployment's error. It never carries a secret: it
    goes through the log sink's masker like every other line, but is written not to need it.
    """


class Stopped(BaseException):
    """The builder was told to stop (SIGTERM: the build was cancelled or its task is ending).

    A `BaseException`, like `KeyboardInterrupt`, so no `except Exception` swallows it on the
    way out of a running command, which must be killed with its whole process group.
    """
