"""Typed, expected failures. Anything else that escapes is a bug and a 500."""

from __future__ import annotations


class FollowupError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, field: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.field = field


class NotFound(FollowupError):
    status_code = 404
    code = "not_found"


class Unauthorized(FollowupError):
    status_code = 401
    code = "unauthorized"


class Forbidden(FollowupError):
    status_code = 403
    code = "forbidden"


class Conflict(FollowupError):
    status_code = 409
    code = "conflict"


class InvalidInput(FollowupError):
    status_code = 422
    code = "invalid_field"


class ConfigurationError(FollowupError):
    """Raised at start-up when settings cannot work; the CLI prints it and exits non-zero."""

    status_code = 500
    code = "configuration"
