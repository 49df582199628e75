"""Every ``--help`` of the command line, rendered and checked against the house rules: one metavar
per concept, one device syntax, an example on every subcommand, a usage line that names each
argument once. Iterates over :data:`edgeclf.cli.COMMANDS`, so new subcommands are checked too."""

from __future__ import annotations

import argparse
import re

import pytest

from conftest import REPO_ROOT

from edgeclf import cli

PATHS = cli.help_paths()

#: Concept (argparse ``dest``) → the one metavar it has wherever it appears.
METAVARS = {
    "split": "SPLIT.json",
    "device": "DEVICE",
    "checkpoint": "RUN_DIR/best.pt",
    "artifact": "ARTIFACT_DIR",
    "artifact_dir": "ARTIFACT_DIR",
    "resume": "RUN_DIR/last.pt",
    "json_out": "OUT.json",
    "csv_out": "OUT.csv",
    "batch_size": "N",
    "threads": "N",
    "workers": "N",
    "data_root": "DIR",
    "data_dir": "DATA_DIR",
}
DEVICE_SYNTAX = "auto|cpu|cuda|cuda:N"


def _help(path) -> str:
    return cli.command_parser(*path).format_help()


def _ids(path) -> str:
    return " ".join(path)


def test_every_command_and_subcommand_is_covered():
    assert [p[0] for p in PATHS if len(p) == 1] == list(cli.COMMANDS)
    assert ("bench", "compare") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_help_renders_through_the_cli(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*path, "--help"])
    assert exit_info.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: edgeclf {' '.join(path)} ") and err == ""


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_help_has_an_example_of_this_command(path):
    text = _help(path)
    m = re.search(r"^examples?:\n((?:  .*\n?)+)", text, re.MULTILINE)
    assert m, f"edgeclf {_ids(path)} --help has no 'example:' section"
    assert f"  edgeclf {' '.join(path)} " in m.group(1), m.group(1)


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_one_metavar_per_concept_and_one_device_syntax(path):
    parser = cli.command_parser(*path)
    for action in parser._actions:
        expected = METAVARS.get(action.dest)
        if expected is None or action.nargs == 0:
            continue
        shown = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
        assert shown == expected, f"edgeclf {_ids(path)} {'/'.join(action.option_strings) or action.dest}: {shown}"
        if action.dest == "device":
            # train's options are "not given" (SUPPRESS) unless typed: TrainConfig holds the default
            assert DEVICE_SYNTAX in action.help and action.default in ("auto", argparse.SUPPRESS)
            assert "(default: auto)" in action.help or action.default == "auto"


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_usage_names_each_argument_once(path):
    usage = _help(path).split("\n\n")[0]
    for action in cli.command_parser(*path)._actions:
        if action.option_strings:
            flag = action.option_strings[-1]
            assert len(re.findall(rf"\[{re.escape(flag)}[\] ]", usage)) <= 1, usage
        elif action.metavar:  # "X [X ...]" is argparse's way to say "one or more"
            assert usage.replace(f"[{action.metavar} ...]", "").count(action.metavar) == 1, usage


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_long_running_commands_can_be_quiet(path):
    parser = cli.command_parser(*path)
    if path[0] in ("data", "split", "train", "evaluate", "export", "bench", "demo") and len(path) == 1:
        assert "--quiet" in parser._option_string_actions


def test_bench_compare_has_its_own_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "compare", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: edgeclf bench compare [-h] A.json B.json\n")
    assert "--backends" not in out


def test_demo_help_and_readme_agree_on_the_time():
    demo = re.search(r"[Aa]bout (\d+) minutes", _help(("demo",)))
    assert demo, "edgeclf demo --help gives no time"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme[readme.index("## Quickstart"):]
    quickstart = quickstart[:quickstart.index("\n## ", 3)]
    assert f"about {demo.group(1)} minutes" in quickstart.lower(), "README and demo --help disagree on the demo's time"
