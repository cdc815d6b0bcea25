"""The one exception type that carries a user-facing message."""


class CompressionError(ValueError):
    """Bad input or unavailable resource; its message is one line fit to show a user."""
