"""Every error as RFC 9457 problem details (``application/problem+json``), never a traceback.

| raised                                   | status | why                                   |
|------------------------------------------|--------|---------------------------------------|
| HTTPException (404, 401, 403, 409, ...)  | its own| handlers and routing                  |
| RequestValidationError                   | 422    | names the first bad field             |
| a body that is not JSON (bad syntax, not | 422    | names ``body`` and why                |
| UTF-8, nested too deep)                  |        |                                       |
| ConfigError, DataValidationError         | 422    | bad parameter or input, quoted        |
| NotFoundError                            | 404    | unknown date, run or model version    |
| LockHeldError                            | 409    | a refresh is already running          |
| NoDataError                              | 503    | nothing computed yet: says what to run|
| ModelUnavailableError                    | 503    | the policy needs the model            |
| SQLAlchemy DBAPIError, pool TimeoutError | 503    | names its ``cause`` (store.db):       |
|                                          |        | unreachable, locked, disk_full,       |
|                                          |        | read_only or error                    |
| IntegrityError, ProgrammingError,        | 500    | bad SQL or a violated constraint: a   |
| DataError, NotSupportedError             |        | bug (unless it has one of the causes) |
| anything else                            | 500    | logged here, no internals in the body |

A 503 carries ``Retry-After`` only where retrying can help (not for a full disk
or a read-only database, which need someone to act).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (  # noqa: F401 - NotFoundError, ModelUnavailableError re-exported
    ConfigError,
    DataValidationError,
    DeepRegimeError,
    ModelUnavailableError,
    NoDataError,
    NotFoundError,
)
from store.db import classify_database_error
from store.locks import LockHeldError

log = logging.getLogger("deepregime.app")

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    cause: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if cause is not None:
        body["cause"] = cause
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_name(location: tuple[Any, ...] | list[Any]) -> str:
    """``('query', 'limit')`` -> ``query.limit``; the body prefix is kept to say where."""
    return ".".join(str(part) for part in location)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and isinstance(error.__cause__, ValueError | RecursionError):
        # FastAPI's answer to a JSON body it could not decode (not UTF-8, nested past
        # the parser's depth): a bad body like any other, named as such.
        reason = "not UTF-8" if isinstance(error.__cause__, UnicodeError) else "nested too deep"
        return _body_problem(f"not valid JSON ({reason})", "json_invalid")
    return problem(error.status_code, str(error.detail), headers=error.headers)


def _body_problem(message: str, kind: str) -> JSONResponse:
    return problem(
        422,
        f"invalid field 'body': {message}",
        errors=[{"field": "body", "message": message, "type": kind}],
    )


def _error_item(item: Mapping[str, Any]) -> dict[str, Any]:
    if item["type"] == "json_invalid":  # loc is ("body", <character offset>)
        reason = item.get("ctx", {}).get("error", "syntax error")
        offset = item["loc"][-1]
        return {
            "field": "body",
            "message": f"not valid JSON: {reason} at character {offset}",
            "type": item["type"],
        }
    return {"field": field_name(item["loc"]), "message": item["msg"], "type": item["type"]}


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [_error_item(item) for item in error.errors()]
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


# What the DB-API reports for the application's own mistakes: a bug, answered 500.
APPLICATION_MISTAKES = (IntegrityError, ProgrammingError, DataError, NotSupportedError)


async def _database_fault(_: Request, error: Exception) -> JSONResponse:
    """503 naming the database's fault (store.db's classification)."""
    fault = classify_database_error(error)
    if fault.cause == "error" and isinstance(error, APPLICATION_MISTAKES):
        raise error  # on to _unexpected: bad SQL or a violated constraint is a bug
    origin = getattr(error, "orig", None) or error
    log.warning("%s (%s: %s)", fault.detail, origin.__class__.__name__, str(origin).strip()[:200])
    headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else None
    return problem(503, fault.detail, headers=headers, cause=fault.cause)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "internal error; the server log has the details")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DeepRegimeError, _domain_error)
    app.add_exception_handler(DBAPIError, _database_fault)
    app.add_exception_handler(PoolTimeoutError, _database_fault)
    app.add_exception_handler(Exception, _unexpected)
