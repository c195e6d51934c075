import datetime as dt

import pytest

from core.errors import ConfigError
from inference.versions import make_version, validate_version


@pytest.mark.parametrize("name", ["2024-12-31-a1b2c3", "1999-01-01-000000", "2020-02-29-ffffff"])
def test_well_formed_names_pass_unchanged(name: str) -> None:
    assert validate_version(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "2024-12-31-a1b2c3/../../x",
        "/2024-12-31-a1b2c3",
        "2024-12-31-A1B2C3",  # upper case hex
        "2024-12-31-a1b2c",  # 5 hex digits
        "2024-12-31-a1b2c3d",
        "2024-13-01-a1b2c3",  # no month 13
        "2023-02-29-a1b2c3",  # not a leap year
        "2024-12-31-a1b2c3\n",
        "",
        "latest",
    ],
)
def test_path_like_or_malformed_names_are_refused_quoting_the_value(name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_version(name)
    assert repr(name) in str(raised.value)
    assert "YYYY-MM-DD" in str(raised.value)


def test_make_version_uses_the_day_and_six_hex_digits_of_the_digest() -> None:
    assert make_version(dt.date(2024, 12, 31), "ABCDEF0123" + "0" * 54) == "2024-12-31-abcdef"
