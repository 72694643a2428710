"""The command line's options agree across commands: every command that touches an index
takes ``--index``, and the help of ``--profile`` and ``--modality`` lists every profile and
modality that exists (read from the profiles registry and the ``Modality`` type, so a new
one cannot be forgotten here)."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
import typer
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.encode.profiles import PROFILES
from mmrag.errors import QueryError
from mmrag.types import Modality

# Commands that never open an index; any other command must take --index.
NO_INDEX = {"detect"}

runner = CliRunner()


def commands() -> dict[str, Any]:
    """Every leaf command by its full name (``keys create``, ...). Typer vendors its own
    click, so groups are told by their ``commands``, not by class."""
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = cmd

    walk(typer.main.get_command(app), "")
    return found


ALL = commands()
INDEXED = sorted(set(ALL) - NO_INDEX)


def required_args(cmd: Any) -> list[str]:
    """Placeholder values for a command's required arguments and options."""
    args: list[str] = []
    for param in cmd.params:
        if not param.required:
            continue
        if param.param_type_name == "option":
            args += [param.opts[0], "read"]
        else:
            args.append("x")
    return args


def test_the_command_list_is_known():
    assert {"add", "search", "ask", "delete", "info", "check", "optimize", "serve", "mcp",
            "eval", "eval-answers", "demo", "keys create", "keys list",
            "keys revoke"} <= set(INDEXED)
    assert NO_INDEX <= set(ALL)


@pytest.mark.parametrize("name", INDEXED)
def test_every_index_command_takes_index(name, tmp_path):
    cmd = ALL[name]
    for flag in ("--index", "-i"):
        ctx = cmd.make_context(name, [*required_args(cmd), flag, str(tmp_path / "idx")])
        folder = ctx.params.get("index", ctx.params.get("data"))
        assert str(folder) == str(tmp_path / "idx"), (name, flag, ctx.params)


@pytest.mark.parametrize("name", [n for n in INDEXED
                                  if any("--profile" in p.opts for p in ALL[n].params)])
def test_profile_help_lists_every_profile(name):
    (option,) = [p for p in ALL[name].params if "--profile" in p.opts]
    for profile in PROFILES:
        assert profile in option.help, (name, option.help)


def test_modality_help_lists_every_modality():
    (option,) = [p for p in ALL["search"].params if "--modality" in p.opts]
    assert set(get_args(Modality)) >= {"image", "text", "page", "audio"}
    for modality in get_args(Modality):
        assert modality in option.help, option.help


def test_rendered_help_shows_them():
    res = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "colpali" in res.output and "audio" in res.output


def test_a_misspelt_modality_is_an_error_naming_the_choices(tmp_path):
    res = runner.invoke(app, ["search", "x", "--modality", "page,sound",
                              "--index", str(tmp_path / "idx")])
    assert isinstance(res.exception, QueryError)
    message = str(res.exception)
    assert "'sound'" in message and all(m in message for m in get_args(Modality))
    assert not (tmp_path / "idx").exists()  # refused before any index is opened


def test_keys_take_index_like_every_other_command(tmp_path):
    folder = str(tmp_path / "idx")
    made = runner.invoke(app, ["keys", "create", "--scope", "read", "--index", folder,
                               "--json"])
    assert made.exit_code == 0, made.output
    key_id = json.loads(made.stdout)["id"]
    listed = runner.invoke(app, ["keys", "list", "-i", folder, "--json"])
    assert [k["id"] for k in json.loads(listed.stdout)] == [key_id]
