"""Model version names: ``YYYY-MM-DD-<6 hex>`` (training end date, ONNX digest).

``validate_version`` is the one check every entry point (CLI, registry on disk,
database, API) runs before a name touches a path or a query, so a name such as
``../../etc/passwd`` is refused everywhere with the same message.
"""

from __future__ import annotations

import datetime as dt
import re

from core.errors import ConfigError

VERSION_PATTERN = re.compile(r"^(\d{4}-\d{2}-\d{2})-([0-9a-f]{6})$")
VERSION_FORMAT = "YYYY-MM-DD-<6 lowercase hex digits>, e.g. 2024-12-31-a1b2c3"


def validate_version(name: str) -> str:
    """Return ``name`` unchanged when it is a well-formed version, else raise ConfigError."""
    match = VERSION_PATTERN.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ConfigError(f"model version {name!r} is not a valid name; expected {VERSION_FORMAT}")
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise ConfigError(
            f"model version {name!r} does not start with a real date; expected {VERSION_FORMAT}"
        ) from None
    return name


def make_version(trained_until: dt.date, onnx_sha256: str) -> str:
    """Version name from the last training day and the ONNX file's sha256 (hex)."""
    return validate_version(f"{trained_until.isoformat()}-{onnx_sha256[:6].lower()}")
