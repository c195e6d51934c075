"""Dependencies as ``Annotated`` aliases; tests swap them with ``app.dependency_overrides``.

| alias          | gives                                   | override in tests to         |
|----------------|-----------------------------------------|------------------------------|
| SettingsDep    | the Settings the app was created with   | change a setting             |
| EngineDep      | the SQLAlchemy engine                   | point at another database    |
| PredictorDep   | the ModelSlot (predictor or why none)   | serve a fake or no model     |
| ClockDep       | a callable returning "now" (aware UTC)  | fix the date                 |
| AdminDep       | passes only with the right X-API-Key    | -                            |

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


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="Admin API key.")] = None,
) -> None:
    """401 without a key; 403 with a wrong one, and for every key when none is configured."""
    if not x_api_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the X-API-Key header is required for admin routes",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    if settings.api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "admin routes are disabled: no API key is configured (DEEPREGIME_API_KEY)",
        )
    expected = settings.api_key.get_secret_value().encode()
    if not hmac.compare_digest(x_api_key.encode(), expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the X-API-Key header is not valid")


AdminDep = Depends(require_api_key)
