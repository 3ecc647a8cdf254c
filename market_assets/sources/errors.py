"""The two ways a source call fails, each naming the source and endpoint it came from."""

from __future__ import annotations


class SourceError(Exception):
    """Base of every failure a source client raises; callers record it as a failed run."""

    def __init__(self, source: str, endpoint: str, message: str) -> None:
        super().__init__(f"{source} {endpoint}: {message}")
        self.source = source
        self.endpoint = endpoint


class PayloadError(SourceError):
    """The source answered, but the body is not what its contract promises.

    Raised for malformed JSON, a missing required field or a value of the wrong type. ``field``
    is the JSON path of the offending value (``$[1][3].markPx``), or ``$`` for the whole body.
    """

    def __init__(self, source: str, endpoint: str, field: str, detail: str) -> None:
        super().__init__(source, endpoint, f"field {field}: {detail}")
        self.field = field
        self.detail = detail


class SourceUnavailable(SourceError):
    """The request failed for good: a non-retryable status, or retries exhausted.

    ``status`` is the last HTTP status (``None`` after a timeout or a broken connection) and
    ``message`` the error text the source put in its body, when it sent one.
    """

    def __init__(self, source: str, endpoint: str, status: int | None, message: str, attempts: int) -> None:
        what = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(source, endpoint, f"{what} after {attempts} attempt(s): {message}")
        self.status = status
        self.message = message
        self.attempts = attempts
