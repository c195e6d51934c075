"""What every subcommand shares: settings, a database engine, one-line failures."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
import yaml
from pydantic import ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from app.settings import Settings, get_settings
from core.errors import DataValidationError, DeepRegimeError
from store.db import make_engine
from store.migrations import schema_is_current

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("deepregime")


def fail(message: str) -> NoReturn:
    """Print a one-line reason on stderr and exit non-zero."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else error.__class__.__name__


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into a one-line reason and exit code 1 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except DeepRegimeError as error:
            fail(str(error))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            fail(f"invalid configuration at '{where}': {first['msg']}")
        except SQLAlchemyError as error:
            fail(f"database error: {one_line(getattr(error, 'orig', None) or error)}")
        except (OSError, ValueError) as error:
            fail(one_line(error))

    return wrapper


def settings() -> Settings:
    return get_settings()


def engine(check_schema: bool = True) -> Engine:
    """Engine for the configured database; refuses a schema behind the migrations."""
    config = settings()
    db = make_engine(config.database_url, config.db_timeout_s)
    if check_schema and not schema_is_current(db):
        db.dispose()
        fail("database schema is not at the latest migration: run `deepregime db upgrade`")
    return db


@contextmanager
def transaction(check_schema: bool = True) -> Iterator[Connection]:
    """One transaction on the configured database: committed on success, else rolled back."""
    db = engine(check_schema)
    try:
        with db.begin() as connection:
            yield connection
    finally:
        db.dispose()


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def read_document(path: Path, expected: str) -> dict[str, Any]:
    """The mapping in a .json, .yaml or .yml file; a DataValidationError naming file
    and line otherwise (``expected`` says what the mapping should hold)."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            payload = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            payload = yaml.safe_load(text)
        else:
            raise DataValidationError(
                f"unsupported file type {suffix or '(none)'!r}: use .json, .yaml or .yml",
                source=str(path),
            )
    except json.JSONDecodeError as error:
        raise DataValidationError(error.msg, source=str(path), line=error.lineno) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise DataValidationError(reason, source=str(path), line=line) from None
    if not isinstance(payload, dict):
        raise DataValidationError(f"expected a mapping with {expected}", source=str(path))
    return payload
