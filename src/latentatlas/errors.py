"""The one exception type that reaches a user as a sentence instead of a traceback."""


class LatentAtlasError(Exception):
    """Bad input or a state the user can fix.

    The message is one sentence that names the input and says what was expected. The CLI prints it
    on stderr and exits with code 2; the server answers it with a 4xx.
    """
