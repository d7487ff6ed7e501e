"""Reading pycrew's configuration files: the user file and the project's ``pycrew.toml`` or
``[tool.pycrew]`` (see :mod:`pycrew.config` for what they hold and how they combine)."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pycrew.errors import OptionsError
from pycrew.tls import hide_private_keys

PROJECT_FILE = "pycrew.toml"
PYPROJECT_FILE = "pyproject.toml"
CONFIG_ENV = "PYCREW_CONFIG"
#: Launcher name of :class:`pycrew.SequentialController` (not a plugin) and its keys.
SEQUENTIAL = "sequential"
SEQUENTIAL_KEYS = frozenset({"name", "workers", "seconds_timeout", "initializer", "initargs", "seconds_initializer"})
#: pycrew's own environment variables: never read as profile overrides.
RESERVED_ENV = frozenset(
    {
        CONFIG_ENV, "PYCREW_STATE_DIR", "PYCREW_PLUGINS", "PYCREW_BLOCK_PLUGINS", "PYCREW_TOKEN", "PYCREW_TLS_CA",
        "PYCREW_WORKER_LOG_LEVEL", "PYCREW_LOCAL_LOG", "PYCREW_SLURM_DIR", "PYCREW_CLOUDRUN_TAG",
        # scripts/slurm/start.sh, the project's test SLURM:
        "PYCREW_SLURM_CPUS", "PYCREW_SLURM_MEMORY_MB", "PYCREW_SLURM_MAX_ARRAY_SIZE", "PYCREW_SLURM_CTLD_PORT",
        "PYCREW_SLURM_D_PORT",
    }
)
#: Options a file cannot set, and why.
CODE_ONLY = {"backup": "it must be a controller object; pass backup= in code"}



class ConfigError(OptionsError):
    """A configuration file or ``PYCREW_*`` variable is malformed, unknown or invalid."""


@dataclass(frozen=True)
class ConfigFile:
    """One configuration file, read and checked for shape.

    Attributes:
        path: where it is.
        scope: ``"user"`` or ``"project"``.
        prefix: ``"tool.pycrew."`` for a ``pyproject.toml``, else ``""``.
        defaults: its ``[defaults]`` table.
        profiles: its ``[profiles.<name>]`` tables by name.
    """

    path: Path
    scope: Literal["user", "project"]
    prefix: str
    defaults: dict[str, Any]
    profiles: dict[str, dict[str, Any]]

    def where(self, section: str) -> str:
        """A source label such as ``/repo/pycrew.toml:profiles.gpu``."""
        return f"{self.path}:{self.prefix}{section}"


def _close(key: str, valid: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the valid name closest to ``key`` (its case aside first), or ``""``."""
    names = sorted(valid)
    match = [n for n in names if n.lower() == key.lower()] or difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def user_config_path() -> Path | None:
    """The user file's path (which may not exist), or ``None`` if ``$PYCREW_CONFIG`` is empty."""
    env = os.environ.get(CONFIG_ENV)
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pycrew" / "config.toml"


def _table(value: Any, label: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{label}: {what} must be a table, got {value!r}")
    return value


def _read(path: Path, scope: Literal["user", "project"], pyproject: bool) -> ConfigFile | None:
    """Parse and shape-check one file; ``None`` for a ``pyproject.toml`` without ``[tool.pycrew]``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pycrew configuration: {exc}") from exc
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark (Windows editors write one) is not TOML's, but harmless
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line, column = raw.count(b"\n", 0, exc.start) + 1, exc.start - line_start + 1
        raise ConfigError(
            f"{path}: not valid TOML: byte 0x{raw[exc.start]:02x} at line {line}, column {column} is not UTF-8 "
            "(TOML files must be UTF-8); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    if pyproject and "pycrew" not in text:
        return None
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    prefix = ""
    if pyproject:
        tool = data.get("tool")
        if not isinstance(tool, dict) or "pycrew" not in tool:
            return None
        data = _table(tool["pycrew"], str(path), "[tool.pycrew]")
        prefix = "tool.pycrew."
    unknown = sorted(set(data) - {"profiles", "defaults"})
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"{path}: unknown key {prefix}{key}{_close(key, ['profiles', 'defaults'])}; a pycrew configuration "
            f"holds [{prefix}profiles.<name>] tables and an optional [{prefix}defaults] table"
        )
    defaults = _table(data.get("defaults", {}), f"{path}:{prefix}defaults", "defaults")
    profiles = _table(data.get("profiles", {}), f"{path}:{prefix}profiles", "profiles")
    for name, table in profiles.items():
        _table(table, f"{path}:{prefix}profiles.{name}", f"profile {name!r}")
    for table in (defaults, *profiles.values()):
        _anchor_tls_paths(table, path.absolute().parent)
    return ConfigFile(path, scope, prefix, defaults, profiles)


def _anchor_tls_paths(table: dict[str, Any], base: Path) -> None:
    """Make the relative file paths of ``table``'s ``tls`` table (``key``, ``certificate``, ``ca``) relative to
    ``base``, the directory of the file that gives them, not to the working directory of the program that reads it."""
    tls = table.get("tls")
    if not isinstance(tls, dict):
        return
    for field in ("key", "certificate", "ca"):
        value = tls.get(field)
        if isinstance(value, str) and value.strip() and "-----BEGIN" not in value and "\n" not in value:
            if not value.startswith("~") and not Path(value).is_absolute():
                tls[field] = str(base / value)


def _project_file(cwd: str | os.PathLike[str] | None) -> ConfigFile | None:
    start = Path(cwd if cwd is not None else os.getcwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file():
            return _read(directory / PROJECT_FILE, "project", pyproject=False)
        if (directory / PYPROJECT_FILE).is_file():
            found = _read(directory / PYPROJECT_FILE, "project", pyproject=True)
            if found is not None:
                return found
    return None


def config_files(cwd: str | os.PathLike[str] | None = None) -> list[ConfigFile]:
    """The configuration files in effect, lowest precedence first (user, then project).

    Raises:
        ConfigError: ``$PYCREW_CONFIG`` names a missing file, or a file is malformed.
    """
    files: list[ConfigFile] = []
    user = user_config_path()
    if user is not None:
        if user.is_file():
            found = _read(user, "user", pyproject=user.name == PYPROJECT_FILE)
            if found is not None:
                files.append(found)
        elif os.environ.get(CONFIG_ENV):
            raise ConfigError(f"{CONFIG_ENV}={os.environ[CONFIG_ENV]!r} names no file; fix it, or unset it")
    project = _project_file(cwd)
    if project is not None and not (files and files[0].path.resolve() == project.path.resolve()):
        files.append(project)
    return files


def profile_names(cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the profiles defined in the configuration files (not validated)."""
    return sorted({n for f in config_files(cwd) for n in f.profiles})


def origins(message: str, values: dict[str, Any], sources: dict[str, str], skip: str | None = None) -> str:
    """``" (workers=2 from env PYCREW_GPU_WORKERS; ...)"``: where each option that ``message`` names got its
    value, ``skip`` aside; ``""`` when it names none of ``sources``.

    A check between two options (``workers_at_start`` at most ``workers``) then says which file, variable
    or argument set each of them.
    """
    named = dict.fromkeys(re.findall(r"\b[A-Za-z_]\w*\b", message))
    keys = [k for k in named if k in sources and k != skip and k in values]
    shown = "; ".join(f"{k}={hide_private_keys(repr(values[k]))} from {sources[k]}" for k in keys)
    return f" ({shown})" if keys else ""
