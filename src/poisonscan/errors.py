"""The errors poisonscan raises. The CLI maps every one of them to exit code 2 and a one-line message."""

from __future__ import annotations


class PoisonscanError(Exception):
    """Base class of every error that means "the scan could not run" (exit code 2)."""


class ConfigError(PoisonscanError):
    """An option or configuration value is invalid. The message names the parameter, value and fix."""


class InputError(PoisonscanError):
    """An input file cannot be read. Carries the file and, where known, the line or row.

    ``location`` is a human-readable position such as ``"line 12"`` or ``"row 40"``; ``reason`` is a
    short machine-readable code (``"malformed_json"``, ``"missing_field"``, ...) used to count skipped
    records per reason in the report.
    """

    def __init__(
        self, path: str, message: str, *, location: str | None = None, reason: str = "unreadable"
    ) -> None:
        self.path = path
        self.location = location
        self.reason = reason
        self.detail = message
        where = f"{path}: {location}" if location else path
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple:
        # A worker process sends its errors to the driver pickled; the default reduction would
        # call ``InputError(formatted message)`` and fail there, breaking the whole pool.
        return (_rebuild_input_error, (self.path, self.detail, self.location, self.reason))


def _rebuild_input_error(path: str, message: str, location: str | None, reason: str) -> InputError:
    return InputError(path, message, location=location, reason=reason)
