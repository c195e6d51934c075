"""The API fixtures (hand-built market, settings) shared with tests/app."""

from tests.app.conftest import (  # noqa: F401
    csv_folder,
    market,
    models_dir,
    populated_url,
    settings,
)
