"""The one settings model: -C keys, [tool.cosmoext], CLI flags and the README
table all come from ``cosmoext.settings.Settings``."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cosmoext import settings
from cosmoext.errors import CosmoextError
from cosmoext.toolchain import host_arch, host_target

ROOT = Path(__file__).resolve().parent.parent


def test_readme_table_is_generated_from_the_model() -> None:
    text = (ROOT / "README.md").read_text()
    begin, end = "<!-- settings-table:begin -->\n", "\n<!-- settings-table:end -->"
    assert begin in text and end in text
    table = text.split(begin, 1)[1].split(end, 1)[0]
    assert table == settings.markdown_table(), \
        "README settings table is stale: run python3 -S -m cosmoext.settings README.md"
    names = [f.name.replace("_", "-") for f in dataclasses.fields(settings.Settings)]
    assert [row.split("`")[1] for row in table.splitlines()[2:]] == names


def test_defaults_come_from_the_running_system() -> None:
    s = settings.Settings()
    assert s.arch == [host_arch()]
    assert s.effective_target() == host_target()
    assert s.effective_pic() is True
    assert s.effective_python_abi() == f"cp{sys.version_info.major}{sys.version_info.minor}"
    cosmo = settings.Settings(toolchain="cosmocc")
    assert cosmo.effective_target() == "cosmo" and cosmo.effective_pic() is False


def test_sources_in_order_and_conversion() -> None:
    s = settings.load({"tool": {"cosmoext": {"arch": ["x86_64", "aarch64"], "pic": "false",
                                             "python-abi": "cp311"}}},
                      {"arch": "aarch64", "jobs": "3", "--build-option": "x"})
    assert (s.arch, s.pic, s.jobs, s.python_abi) == (["aarch64"], False, 3, "cp311")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("archh", "x86_64", "unknown setting 'archh' (did you mean 'arch'?)"),
    ("arch", "mips", "setting 'arch': unsupported architecture mips"),
    ("toolchain", "msvc", "setting 'toolchain': unknown value 'msvc'"),
    ("pic", "maybe", "setting 'pic': expected true or false"),
    ("jobs", "many", "setting 'jobs': expected a number"),
    ("target", "Linux GNU", "setting 'target': 'Linux GNU' is not a target name"),
    ("libpython", "/x.a", "setting 'libpython' applies to embed, not to build"),
])
def test_bad_values_name_the_setting(key: str, value: str, message: str) -> None:
    with pytest.raises(CosmoextError, match="^config setting \\(-C\\): ") as e:
        settings.load(None, {key: value})
    assert message in str(e.value)


def test_cli_flags_are_the_model_fields() -> None:
    for scope in (settings.BUILD, settings.EMBED):
        p = argparse.ArgumentParser()
        settings.add_arguments(p, scope)
        flags = {a.dest for a in p._actions if a.dest != "help"}
        assert flags == {f.name for f in dataclasses.fields(settings.Settings)
                         if scope in f.metadata["scopes"]}
    p = argparse.ArgumentParser()
    settings.add_arguments(p, settings.BUILD)
    s = settings.from_args(p.parse_args(["--arch", "aarch64", "--no-pic", "-j", "2"]),
                           settings.BUILD)
    assert (s.arch, s.pic, s.jobs) == (["aarch64"], False, 2)
    with pytest.raises(CosmoextError, match="command line --arch: setting 'arch'"):
        settings.from_args(p.parse_args(["--arch", "sparc"]), settings.BUILD)


def test_cli_error_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "build-ext", "--name", "m",
                           "--arch", "sparc", "x.c"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "cosmoext: error: command line --arch: setting 'arch': unsupported architecture sparc "
        "(choose from x86_64, aarch64)"]
