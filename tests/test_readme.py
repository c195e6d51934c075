"""README works as written: the commands of its shell blocks run, or are checked, or are
skipped by a rule listed here with its reason.

Every command of README.md's shell blocks (```bash fences and indented code blocks whose
lines are commands) falls under exactly one rule of RULES, first match wins:

- RUN: run as written, after the README's own `. .venv/bin/activate`, in a sandbox folder
  (the repository's virtualenv, models and research examples linked in, a fresh
  ./var/deepregime.db holding a made-up market run through the daily cycle, no
  DEEPREGIME_* variable set, and `deepregime` not on PATH until activated). Synopsis
  placeholders are replaced as the rule says (DIR: a folder of CSV files; NAME: a rule
  set). It must exit 0.
- CHECK: for what cannot run here (network, minutes of training, a server that runs
  until stopped): every subcommand and option the line names must exist in the
  command line as built (the click tree behind `deepregime`), and every repository
  file it names must exist.
- SKIP: nothing of it can be checked here (docker compose, curl against a running
  service, another host); the reason is the test's id.

A command no rule covers fails the test, so a new block needs a rule, never a silent pass.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.main import app
from tests.app.conftest import LAST_DAY, market_days, market_frame, write_csv_folder

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ACTIVATE = ". .venv/bin/activate"
# Linked into the sandbox: what the README's commands read from the repository.
LINKED = (".venv", "models", "research")


@dataclass(frozen=True)
class Command:
    line: int  # README line where it starts
    text: str  # as written: continuations joined, trailing comment or description cut


@dataclass(frozen=True)
class Rule:
    pattern: str  # a regular expression searched in the command's text
    action: str  # RUN, CHECK or SKIP
    reason: str
    runs: tuple[str, ...] = ()  # RUN: the concrete commands, placeholders filled


RUN, CHECK, SKIP = "run", "check", "skip"
NEEDS_SERVICE = "asks the service `make run` or `deepregime serve` keeps running on :8000"
LONG = "takes minutes (training, walk-forward evaluation) or runs until stopped"
RULES = (
    Rule(r"^make run$", SKIP, "make run installs, loads the shipped data and serves until stopped"),
    Rule(r"^make test$", SKIP, "make test runs the whole suite, this test included"),
    Rule(r"^\. \.venv/bin/activate$", RUN, "the README's way to reach `deepregime`"),
    Rule(r"^deepregime --help$", RUN, "offline and quick"),
    Rule(r"^deepregime db upgrade$", RUN, "offline and quick, on the sandbox's database"),
    Rule(
        r"^deepregime update --source csv --path DIR$",
        RUN,
        "the daily cycle on a made-up CSV folder (DIR)",
        ("deepregime update --source csv --path {csv}",),
    ),
    Rule(r"--source yfinance", CHECK, "downloads from Yahoo Finance (network)"),
    Rule(r"^deepregime update \.\.\. ", CHECK, "'...' stands for the options of the lines above"),
    Rule(r"^deepregime (schedule|serve)\b", CHECK, LONG),
    Rule(r"^deepregime ingest \| features \| signals$", CHECK, "the update's steps, named apart"),
    Rule(r"^deepregime status$", RUN, "offline and quick, on the sandbox's database"),
    Rule(
        r"^deepregime backtest --preset published-framework",
        RUN,
        "the preset, its options checked too, on the sandbox's made-up market",
        ("deepregime backtest --preset published-framework --json",),
    ),
    Rule(
        r"^deepregime rule-sets list \| show NAME$",
        RUN,
        "offline and quick (NAME: the published preset)",
        ("deepregime rule-sets list", "deepregime rule-sets show published"),
    ),
    Rule(r"^deepregime rule-sets register", CHECK, "registers a file the reader writes first"),
    Rule(r"^deepregime sweep FILE", CHECK, "a synopsis: FILE is the reader's sweep"),
    Rule(r"tcp://scheduler:8786", SKIP, "needs the Dask scheduler host `scheduler` (network)"),
    Rule(r"^dask scheduler$", SKIP, "a Dask scheduler runs until stopped"),
    Rule(r"^deepregime (train|evaluate)\b", CHECK, LONG),
    Rule(
        r"^deepregime models list\|show\|activate\|predict$",
        RUN,
        "listing is offline and quick; the other three are checked",
        ("deepregime models list",),
    ),
    Rule(r"^curl .*localhost:8000", SKIP, NEEDS_SERVICE),
    Rule(r"^docker compose\b", SKIP, "docker compose: scripts/container_test.sh runs these lines"),
    Rule(
        r"^export DEEPREGIME_DASK_SCHEDULER=", SKIP, "the environment of the compose line after it"
    ),
)


# --- reading the README ---------------------------------------------------------------


def _is_listing(lines: list[str]) -> bool:
    """An indented block naming folders (the layout), not commands."""
    words = [line.split()[0] for line in lines if line.strip()]
    return bool(words) and all(word.endswith("/") for word in words)


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every ```bash block and every indented code block
    that is not a folder listing."""
    lines = text.splitlines()

    def indented(j: int) -> bool:
        return j < len(lines) and lines[j].startswith("    ")

    blocks: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) in ("bash", "sh", "shell"):
                blocks.append((i + 2, lines[i + 1 : end]))
            i = end + 1
        elif indented(i) and (i == 0 or not lines[i - 1].strip()):
            end = i
            # A block runs on over blank lines followed by more indented ones.
            while indented(end) or (not lines[end].strip() and indented(end + 1)):
                end += 1
            body = [line[4:] for line in lines[i:end]]
            if not _is_listing(body):
                blocks.append((i + 1, body))
            i = end
        else:
            i += 1
    return blocks


def commands(text: str) -> list[Command]:
    """Each command of the shell blocks: comment lines left out, a trailing comment or a
    synopsis' description (after three spaces) cut, continuation lines joined."""
    found = []
    for first, lines in shell_blocks(text):
        pending: tuple[int, str] | None = None
        for offset, raw in enumerate(lines):
            line = raw.strip()
            if pending is None and (not line or line.startswith("#")):
                continue
            start, text_so_far = pending or (first + offset, "")
            if line.endswith("\\"):
                pending = (start, f"{text_so_far}{line[:-1].strip()} ")
                continue
            pending = None
            command = re.split(r"\s{3,}|\s+#\s", f"{text_so_far}{line}")[0].strip()
            found.append(Command(start, command))
    return found


def rule_for(command: Command) -> Rule:
    matching = [rule for rule in RULES if re.search(rule.pattern, command.text)]
    if not matching:
        pytest.fail(
            f"README line {command.line}: no rule in tests/test_readme.py for {command.text!r}"
        )
    return matching[0]


COMMANDS = commands(README.read_text(encoding="utf-8"))


def _id(command: Command) -> str:
    rule = rule_for(command)
    return f"line {command.line} {rule.action}: {command.text} ({rule.reason})"


# --- the sandbox ----------------------------------------------------------------------


def _environment() -> dict[str, str]:
    """This environment without DEEPREGIME_* and without any folder that holds a
    `deepregime` command: the README's activation must be what puts it on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEEPREGIME_")}
    env.pop("VIRTUAL_ENV", None)
    folders = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(f for f in folders if not (Path(f) / "deepregime").exists())
    env["COLUMNS"] = "200"
    return env


def _shell(sandbox: Path, script: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=sandbox,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like the repository after `make run`, on a made-up market."""
    folder = tmp_path_factory.mktemp("readme")
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    csv = write_csv_folder(folder / "market", market_frame(market_days(LAST_DAY)))
    prepared = _shell(
        folder,
        f"{ACTIVATE} && deepregime db upgrade && deepregime update --source csv --path {csv}",
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    return folder


# --- the tests ------------------------------------------------------------------------


def test_every_command_of_the_readme_has_a_rule_and_the_readme_says_how_to_reach_it():
    assert {rule_for(command).action for command in COMMANDS} == {RUN, CHECK, SKIP}
    activations = [c.line for c in COMMANDS if c.text == ACTIVATE]
    # Each block that calls deepregime activates the virtualenv first (or comes after
    # the quick start's activation, the first of them).
    assert activations and activations[0] < min(
        c.line for c in COMMANDS if c.text.startswith("deepregime")
    )
    text = README.read_text(encoding="utf-8")
    assert ".venv/bin/deepregime" in text


def test_deepregime_is_reached_only_as_the_readme_says(sandbox):
    assert _shell(sandbox, "command -v deepregime").returncode != 0  # not on PATH as is
    assert _shell(sandbox, "deepregime --help").returncode == 127  # "command not found"
    direct = _shell(sandbox, ".venv/bin/deepregime --help")
    assert direct.returncode == 0 and "Usage: deepregime" in direct.stdout


def _walk(path: list[str], line: int) -> Any:
    """The command ``deepregime <path>`` names (a click command as typer builds it): each
    word must be a subcommand of the group before it; after a command that is not a
    group, the words are its arguments."""
    node = typer.main.get_command(app)
    for word in path:
        if not hasattr(node, "commands"):  # not a group
            break
        if word not in node.commands:
            pytest.fail(f"README line {line}: `deepregime {' '.join(path)}`: no {word!r}")
        node = node.commands[word]
    return node


def _check(command: Command) -> None:
    """Every subcommand (alternatives `a | b` or `a|b` expanded) and every option the line
    names exists in the command line as built."""
    words = command.text.replace(" | ", "|").split()
    paths: list[list[str]] = [[]]
    for word in words[words.index("deepregime") + 1 :]:
        if not re.fullmatch(r"[a-z][a-z|-]*", word):
            break  # an option, a placeholder, a file: the subcommands end here
        paths = [[*path, choice] for path in paths for choice in word.split("|")]
    named = [_walk(path, command.line) for path in paths]
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command.text))
    known = {"--help", *(name for node in named for param in node.params for name in param.opts)}
    assert options <= known, f"README line {command.line}: unknown options {options - known}"


def _check_files(command: Command) -> None:
    """Every repository file a command names exists."""
    for token in command.text.split():
        if re.fullmatch(r"[\w.-]+(/[\w.-]+)+", token) and not token.startswith(".venv/"):
            assert (ROOT / token).exists(), f"README line {command.line}: no file {token}"


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_readme_command(command: Command, request: pytest.FixtureRequest) -> None:
    rule = rule_for(command)
    _check_files(command)
    if rule.action == SKIP:
        pytest.skip(rule.reason)
    if command.text.startswith("deepregime"):
        _check(command)  # what a RUN line names must exist too
    if rule.action == CHECK:
        return
    sandbox = request.getfixturevalue("sandbox")
    csv = sandbox / "market"
    for concrete in rule.runs or (command.text,):
        script = concrete.format(csv=csv)
        if script != ACTIVATE:
            script = f"{ACTIVATE} && {script}"
        done = _shell(sandbox, script)
        assert done.returncode == 0, (
            f"README line {command.line}: `{concrete}` exited {done.returncode}\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def test_the_blocks_are_read_as_a_reader_sees_them():
    sample = "\n".join(
        [
            "text",
            "",
            "    core/    pure maths",
            "    store/   tables",
            "",
            "more text",
            "",
            "    deepregime status                  rows per symbol",
            "    deepregime evaluate --a 1 \\",
            "        --b 2      # minutes",
            "    # a comment",
            "",
            "```bash",
            "make run    # serve",
            "```",
            "```python",
            "print('not shell')",
            "```",
        ]
    )
    assert [(c.line, c.text) for c in commands(sample)] == [
        (8, "deepregime status"),
        (9, "deepregime evaluate --a 1 --b 2"),
        (14, "make run"),
    ]
