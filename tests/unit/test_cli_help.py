"""The command line explains itself: descriptions, defaults and choices, the right usage on a typo."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cli import NO_CONFIG, build_parser, main
from service.status import filter_rows


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command with its parser, e.g. ("db grants", parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                key = f"{prefix} {name}".strip()
                yield key, sub
                yield from commands(sub, key)


COMMANDS = dict(commands(build_parser()))
LEAVES = sorted(key for key, sub in COMMANDS.items() if not dict(commands(sub)))


def option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text of one option as --help prints it (defaults and choices expanded)."""
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [a for a in parser._actions if a.option_strings and not isinstance(a, skip)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_description(command: str) -> None:
    """`rotator <command> --help` opens with a description of what the command does."""
    parser = COMMANDS[command]
    assert parser.description
    assert " ".join(parser.description.split()) in " ".join(parser.format_help().split())


@pytest.mark.parametrize("command", LEAVES)
def test_every_flag_says_its_default_and_choices(command: str) -> None:
    """Each option has help; it names every choice, and its default unless it is an on/off switch."""
    parser = COMMANDS[command]
    for action in options(parser):
        text = option_help(parser, action)
        assert text, f"rotator {command} {action.option_strings[0]} has no help"
        for choice in action.choices or []:
            assert str(choice) in text, f"rotator {command} {action.option_strings[0]}: choice {choice}"
        if not isinstance(action, argparse._StoreTrueAction):
            assert "default" in text, f"rotator {command} {action.option_strings[0]} does not say its default"


def test_help_check_fails_on_a_flag_without_default_text() -> None:
    """The check above notices an option whose help says nothing of its default."""
    parser = argparse.ArgumentParser()
    action = parser.add_argument("--where", help="somewhere")
    assert "default" not in option_help(parser, action)


@pytest.mark.parametrize("argv", [["once", "--dryrun"], ["audit", "list", "--secrt", "x"], ["db", "upgrade", "--al"]])
def test_a_mistyped_flag_shows_that_commands_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown flag exits 2 with the usage of the command it was given to, not the top level's."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    command = " ".join(a for a in argv if not a.startswith("-") and a != "x")
    assert err.startswith(f"usage: rotator {command} ")
    assert f"rotator {command}: error: unrecognized arguments: " in err


@pytest.mark.parametrize("command", sorted(NO_CONFIG))
@pytest.mark.parametrize("where", ["after", "before"])
def test_commands_without_configuration_refuse_config(
    command: str, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo`, `db grants` and `emulator aicore` refuse a --config they would ignore, wherever it is given."""
    argv = [*command.split(), "--config", "x.toml"] if where == "after" else ["--config", "x.toml", *command.split()]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert f"usage: rotator {command}" in capsys.readouterr().err


def test_status_takes_target_secret_and_stale() -> None:
    """`rotator status --target T --secret S --stale` parses into the filter's arguments."""
    args = build_parser().parse_args(["status", "--target", "eu", "--secret", "a", "--secret", "b", "--stale"])
    assert (args.target, args.secret, args.stale) == (["eu"], ["a", "b"], True)


ROWS = [
    {"target": "eu", "secret": "acme-registry", "stale": True},
    {"target": "us", "secret": "acme-registry", "stale": False},
    {"target": "eu", "secret": "ghcr-pull", "stale": False},
    {"target": "us", "secret": "ghcr-pull"},  # no stale field: a state from before staleness was tracked
]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [0, 1, 2, 3]),
        ({"targets": ["eu"]}, [0, 2]),
        ({"secrets": ["ghcr-pull"]}, [2, 3]),
        ({"targets": ["us"], "secrets": ["acme-registry"]}, [1]),
        ({"stale": True}, [0]),
        ({"stale": True, "targets": ["us"]}, []),
    ],
)
def test_status_filter(kwargs: dict[str, object], expected: list[int]) -> None:
    """Rows keep the named targets and secrets (none named: all) and, with stale, only stale pairs."""
    assert filter_rows(ROWS, **kwargs) == [ROWS[i] for i in expected]  # type: ignore[arg-type]


def test_check_summary_prints_durations_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interval schedule shows as `every 6h`, not `every 6:00:00`."""
    monkeypatch.delenv("ROTATOR_CONFIG", raising=False)
    path = tmp_path / "rotator.toml"
    path.write_text(
        '[targets.eu]\nservice_key = {file = "/nowhere/eu.json"}\n'
        '[[secrets]]\nname = "acme-registry"\ntargets = ["eu"]\nregistries = ["registry.acme.example"]\n'
        'source = {path = "registries/acme"}\n'
        'schedule = {every = "6h"}\n'
    )
    assert main(["check", "--structure-only", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "every 6h;" in out
    assert "6:00:00" not in out


def test_status_refuses_unknown_names_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --secret` or `--target` naming nothing configured exits 2 naming it, before any connection."""
    monkeypatch.delenv("ROTATOR_CONFIG", raising=False)
    example = Path(__file__).resolve().parents[2] / "config" / "rotator.example.toml"
    assert main(["status", "-c", str(example), "--secret", "no-such-secret", "--target", "mars"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "error: command line: --secret: no secret named 'no-such-secret' in the configuration" in err
    assert "error: command line: --target: no target named 'mars' in the configuration" in err
