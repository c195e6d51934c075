"""Every error as RFC 9457 problem details (``application/problem+json``), never a traceback.

| raised                                   | status | why                                   |
|------------------------------------------|--------|---------------------------------------|
| HTTPException (404, 401, 403, 409, ...)  | its own| handlers and routing                  |
| RequestValidationError                   | 422    | names the first bad field             |
| ConfigError, DataValidationError         | 422    | bad parameter or input, quoted        |
| NotFoundError                            | 404    | unknown date, run or model version    |
| LockHeldError                            | 409    | a refresh is already running          |
| NoDataError                              | 503    | nothing computed yet: says what to run|
| ModelUnavailableError                    | 503    | the policy needs the model            |
| SQLAlchemy OperationalError/TimeoutError | 503    | database unreachable                  |
| anything else                            | 500    | logged here, no internals in the body |
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ConfigError, DataValidationError, DeepRegimeError, NoDataError
from store.locks import LockHeldError

log = logging.getLogger("deepregime.app")

PROBLEM_JSON = "application/problem+json"


class NotFoundError(DeepRegimeError):
    """The named thing (date, run, model version) does not exist."""


class ModelUnavailableError(DeepRegimeError):
    """The requested policy needs the classifier, which is not serving."""


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_name(location: tuple[Any, ...] | list[Any]) -> str:
    """``('query', 'limit')`` -> ``query.limit``; the body prefix is kept to say where."""
    return ".".join(str(part) for part in location)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return problem(error.status_code, str(error.detail), headers=error.headers)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"field": field_name(item["loc"]), "message": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    detail = f"invalid field '{first['field']}': {first['message']}"
    return problem(422, detail, errors=errors)


DOMAIN_STATUS: tuple[tuple[type[DeepRegimeError], int], ...] = (
    (NotFoundError, 404),
    (LockHeldError, 409),
    (ConfigError, 422),
    (DataValidationError, 422),
    (NoDataError, 503),
    (ModelUnavailableError, 503),
)


async def _domain_error(_: Request, error: Exception) -> JSONResponse:
    status = next((code for kind, code in DOMAIN_STATUS if isinstance(error, kind)), 400)
    errors = None
    if isinstance(error, DataValidationError) and error.field:
        errors = [{"field": error.field, "message": error.reason}]
    return problem(status, str(error), errors=errors)


async def _database_down(_: Request, error: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", error.__class__.__name__)
    return problem(503, "database unavailable; retry shortly", headers={"Retry-After": "5"})


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "internal error; the server log has the details")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DeepRegimeError, _domain_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(PoolTimeoutError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
