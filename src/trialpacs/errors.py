"""Errors shared by every layer.

Each carries a message meant for the person who sent the input, so adapters
(HTTP, DIMSE, CLI) can show it as-is without inventing their own wording.
"""


class TrialpacsError(Exception):
    """Base class for errors whose message is safe to show to the caller."""


class InvalidInput(TrialpacsError):
    """The input was refused; the message names what is wrong with it."""


class Conflict(TrialpacsError):
    """The input contradicts something already stored (e.g. same UID, other bytes)."""


class NotFound(TrialpacsError):
    """The object does not exist or the caller may not know that it does."""


class TooLarge(InvalidInput):
    """The input exceeds a configured size limit."""
