"""The one settings model of cosmoext's builds.

Sources, later ones winning: ``[tool.cosmoext]`` in pyproject.toml, then
``config_settings`` (``pip wheel -C key=value``, ``python -m build -C``).
Values may be strings or lists; an unknown key is an error with a hint.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import CosmoextError
from .toolchain import TOOLCHAINS, host_arch

ARCHES = ("x86_64", "aarch64")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class Settings:
    """What to build: the same knobs as ``cosmoext build-ext``."""

    target: str | None = None  # "cosmo" or a host platform; default: this interpreter's
    arch: list[str] = field(default_factory=lambda: [host_arch()])
    toolchain: str = "gnu"
    pic: bool | None = None  # default: PIC for host targets, non-PIC for cosmo
    verbose: bool = False
    jobs: int = 0

    def effective_target(self) -> str:
        from .toolchain import host_target

        return self.target or ("cosmo" if self.toolchain == "cosmocc" else host_target())


def _as_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise CosmoextError(f"setting '{key}': expected a string or a list of strings, got {value!r}")


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise CosmoextError(f"setting '{key}': expected true or false, got {value!r}")


def _apply(s: Settings, key: str, value: Any, origin: str) -> None:
    names = [f.name for f in fields(Settings)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(names)})"
        raise CosmoextError(f"{origin}: unknown setting '{key}'{hint}")
    if isinstance(value, list) and key != "arch" and len(value) == 1:
        value = value[0]
    if key == "arch":
        arches = _as_list(key, value)
        bad = [a for a in arches if a not in ARCHES]
        if bad or not arches:
            raise CosmoextError(f"{origin}: setting 'arch': unsupported architecture "
                                f"{', '.join(bad) or '(none)'} (choose from {', '.join(ARCHES)})")
        s.arch = list(dict.fromkeys(arches))
    elif key == "toolchain":
        if value not in TOOLCHAINS:
            raise CosmoextError(f"{origin}: setting 'toolchain': unknown toolchain {value!r} "
                                f"(choose from {', '.join(TOOLCHAINS)})")
        s.toolchain = value
    elif key == "target":
        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", value):
            raise CosmoextError(f"{origin}: setting 'target': {value!r} is not a target name "
                                "(cosmo, or a host platform such as linux-gnu)")
        s.target = value
    elif key in ("pic", "verbose"):
        setattr(s, key, _as_bool(key, value))
    elif key == "jobs":
        try:
            s.jobs = int(value)
        except (TypeError, ValueError):
            raise CosmoextError(f"{origin}: setting 'jobs': expected a number, got {value!r}") \
                from None


def load(pyproject: dict[str, Any] | None = None,
         config_settings: dict[str, Any] | None = None) -> Settings:
    """Build the settings; keys starting with '-' are left to setuptools."""
    s = Settings()
    table = ((pyproject or {}).get("tool") or {}).get("cosmoext") or {}
    if not isinstance(table, dict):
        raise CosmoextError("pyproject.toml: [tool.cosmoext] must be a table")
    for key, value in table.items():
        _apply(s, key.replace("-", "_"), value, "pyproject.toml [tool.cosmoext]")
    for key, value in (config_settings or {}).items():
        if key.startswith("-"):
            continue
        key = key.removeprefix("cosmoext.").replace("-", "_")
        _apply(s, key, value, "config setting (-C)")
    return s
