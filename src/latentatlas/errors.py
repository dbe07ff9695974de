"""The exception types that reach a user as a sentence instead of a traceback."""


class LatentAtlasError(Exception):
    """Bad input or a state the user can fix.

    The message is one sentence that names the input and says what was expected. The CLI prints it
    on stderr and exits with code 2; the server answers it with a 4xx (422 unless a subclass says
    otherwise).
    """

    status = 422


class NotFound(LatentAtlasError):
    """Something asked for by name (a run, a row, a file in a run) is not there: HTTP 404."""

    status = 404


class Busy(LatentAtlasError):
    """Another process is writing the same run or store (its lock is held): HTTP 409."""

    status = 409
