"""Dependencies as ``Annotated`` aliases; tests swap them with ``app.dependency_overrides``.

| alias          | gives                                   | override in tests to         |
|----------------|-----------------------------------------|------------------------------|
| SettingsDep    | the Settings the app was created with   | change a setting             |
| EngineDep      | the SQLAlchemy engine                   | point at another database    |
| PredictorDep   | the ModelSlot (predictor or why none)   | serve a fake or no model     |
| ClockDep       | a callable returning "now" (aware UTC)  | fix the date                 |
| CallerDep      | the verified key's caller, or None      | -                            |
| AdminDep       | passes only with an admin key           | -                            |
| ResearcherDep  | a research or admin key's caller        | -                            |

There is deliberately no per-request connection dependency: FastAPI enters a
yield dependency on one pool thread and runs the handler on another, so under
load every thread can end up waiting for a pooled connection held by a request
that waits for a thread (a deadlock until the pool times out). Handlers take the
engine and check a connection out on their own thread instead.

Dependencies that do no I/O are ``async def`` so FastAPI runs them on the event
loop instead of sending each to the thread pool (this matters on /regime/today).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlalchemy import Engine

from app.settings import Settings
from app.state import ServiceState
from operations import keys
from operations.keys import Caller
from operations.models import ModelSlot

Clock = Callable[[], dt.datetime]


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_app_settings(state: StateDep) -> Settings:
    return state.settings


async def get_engine(state: StateDep) -> Engine:
    return state.engine


async def get_model(state: StateDep) -> ModelSlot:
    return state.model


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def get_clock() -> Clock:
    return utc_now


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
PredictorDep = Annotated[ModelSlot, Depends(get_model)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def identify(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    x_api_key: Annotated[str | None, Header(description="API key (operations.keys).")] = None,
) -> Caller | None:
    """The caller of a verified key; None without a key; 403 for a key that is not valid.
    Kept on the request, for the rate limits (app.rate_limit)."""
    caller = None
    if x_api_key:
        caller = _verified(x_api_key, settings, engine)
        if caller is None:
            detail = "the X-API-Key header is not valid"
            if settings.api_key is None:
                detail += " (and no API key is configured: DEEPREGIME_API_KEY)"
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail)
    request.state.caller = caller
    return caller


def _verified(key: str, settings: Settings, engine: Engine) -> Caller | None:
    if settings.api_key is not None and hmac.compare_digest(
        key.encode(), settings.api_key.get_secret_value().encode()
    ):
        return Caller(key_id=keys.SETTINGS_KEY_ID, role="admin")
    with engine.connect() as connection:  # see above: checked out on this thread
        return keys.verify(connection, key)


CallerDep = Annotated[Caller | None, Depends(identify)]


def require(role: str) -> Callable[[Caller | None], Caller]:
    """A dependency passing only callers whose role reaches ``role``: 401 without a key,
    403 with a key of a lesser role."""

    async def dependency(caller: CallerDep) -> Caller:
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"the X-API-Key header is required: this route needs a {role} key",
                headers={"WWW-Authenticate": "X-API-Key"},
            )
        if not caller.may(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"the X-API-Key header holds a {caller.role} key: this route needs a {role} key",
            )
        return caller

    return dependency


AdminDep = Depends(require("admin"))
ResearcherDep = Annotated[Caller, Depends(require("research"))]
