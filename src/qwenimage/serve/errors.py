"""One error type and one renderer: every failure reaches the client as the OpenAI error body
`{"error": {"message", "type", "param", "code"}}` with a 4xx status (5xx only for our own faults, and then
without a traceback). Streams send the same body as their last event."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 411: "invalid_request_error", 413: "invalid_request_error",
               422: "invalid_request_error", 429: "rate_limit_error", 499: "invalid_request_error",
               500: "server_error", 503: "server_error"}


class ServeError(Exception):
    """A failure with the HTTP status and the OpenAI error fields it is reported with."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ServeError:
    return ServeError(400, message, param=param, code=code)


def error_response(err: ServeError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def as_serve_error(err: BaseException) -> ServeError:
    """Any exception as the error the client sees: ValueError (bad input, ImageError included) is a 400 with
    its message; anything else is a 500 whose details stay in the log."""
    if isinstance(err, ServeError):
        return err
    if isinstance(err, ValueError):
        return invalid(str(err))
    log.error("internal error", exc_info=err)
    return ServeError(500, "internal server error; see the server log", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, err: ServeError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        first = jsonable_encoder(err.errors())[0]
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "form")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return error_response(invalid(message, param, code=first.get("type", "invalid_value")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(ServeError(err.status_code, str(err.detail), code="http_error"))

    @app.exception_handler(ValueError)
    async def _value(request: Request, err: ValueError) -> JSONResponse:
        return error_response(as_serve_error(err))

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception) -> JSONResponse:
        return error_response(as_serve_error(err))
