"""The refusals the API answers, each with its status and machine word."""


class APIError(Exception):
    """A refusal the client is told about as a JSON error."""

    status = 500
    error = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict:
        """The body of the answer, as PROTOCOL.md shapes it."""
        return {"statusCode": self.status, "message": self.message, "error": self.error}


class BadRequest(APIError):
    status = 400
    error = "bad_request"


class Unauthorized(APIError):
    status = 401
    error = "unauthorized"


class NotFound(APIError):
    status = 404
    error = "not_found"


class MethodNotAllowed(APIError):
    status = 405
    error = "method_not_allowed"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class PayloadTooLarge(APIError):
    status = 413
    error = "payload_too_large"


class Unavailable(APIError):
    status = 503
    error = "unavailable"
