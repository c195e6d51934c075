"""The examples of README's "For trading systems" section, run as written against a live
service (only its address changed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deepregime_client import Client

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "\n## For trading systems\n"


def readme_examples() -> list[str]:
    """The section's Python code blocks, in order."""
    section = README.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_client_example_runs_as_written(service, capsys):
    example = readme_examples()[0]
    assert "http://localhost:8000" in example
    exec(compile(example.replace("http://localhost:8000", service.url), "README.md", "exec"), {})
    with Client(service.url) as client:
        today = client.today()
    assert capsys.readouterr().out.splitlines() == [
        "2012-04-05 risk-off hold 0% of the book",
        f"{today.publication_id} risk-off 0.0",
    ]
