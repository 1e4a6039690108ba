"""The command line as a user meets it: every subcommand's help, and the top-level entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from railvision.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_working_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage: railvision " + command in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "detect" in capsys.readouterr().out


def test_module_entry_point_and_version():
    done = subprocess.run([sys.executable, "-m", "railvision", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("railvision ")
