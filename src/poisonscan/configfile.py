"""Config files: ``poisonscan.toml`` or ``[tool.poisonscan]`` in ``pyproject.toml``.

Discovery walks from the current working directory up to the filesystem root and takes the first
directory holding either file (``poisonscan.toml`` wins over ``pyproject.toml`` in the same
directory; a ``pyproject.toml`` without a ``[tool.poisonscan]`` table is passed over). It never
looks inside the scanned data: a config file whose directory is a scanned directory, or lies
inside one, is ignored with a note, because a dataset must not be able to silence the scanner.
An operator who wants such a file says so with ``--config FILE``.

Precedence: command-line flags, then the config file, then :class:`ScanConfig`'s defaults.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonscan.config import ScanConfig
from poisonscan.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAMES = ("poisonscan.toml", "pyproject.toml")
_GLOB_CHARS = "*?["

# Keys a config file may set: ScanConfig's fields (not ``paths``) and the operator-side options.
_INT_KEYS = ("max_record_bytes", "batch_rows", "jobs", "min_documents", "seed")
_SIZE_KEYS = ("memory_budget", "max_record_bytes")
_STR_KEYS = ("shape", "text_field", "id_field", "fail_on", "executor", "scheduler")
_PATH_KEYS = ("state_dir",)  # strings, relative to the config file as ``baseline`` is
EXTRA_KEYS = ("baseline",)  # not part of ScanConfig; a path, relative to the config file
SCAN_KEYS = tuple(name for name in ScanConfig.field_names() if name != "paths")


@dataclass(frozen=True)
class ConfigSource:
    """A config file that was found (or given), and the settings it holds (keys normalised)."""

    path: Path
    values: dict[str, Any]
    ignored: tuple[Path, ...] = ()  # files found inside the scanned data and passed over


@dataclass(frozen=True)
class Effective:
    """The effective scan configuration and where it came from."""

    config: ScanConfig
    source: Path | None
    baseline: str | None = None
    notes: tuple[str, ...] = field(default=())


def _normalise_key(key: str) -> str:
    return key.replace("-", "_")


def read_config_file(path: Path) -> dict[str, Any] | None:
    """The poisonscan settings of ``path``; None when a pyproject.toml has no ``[tool.poisonscan]``.

    Raises:
        ConfigError: the file cannot be read or parsed, or holds an unknown key or a bad value.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {str(path)!r}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # (TOML is UTF-8)
        raise ConfigError(f"config: {str(path)!r} is not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if not isinstance(tool, dict) or "poisonscan" not in tool:
            return None
        data = tool["poisonscan"]
        if not isinstance(data, dict):
            raise ConfigError(f"config: [tool.poisonscan] in {str(path)!r} must be a table")
    elif isinstance(data.get("tool"), dict) and "poisonscan" in data["tool"] and len(data) == 1:
        data = data["tool"]["poisonscan"]  # a poisonscan.toml written like a pyproject section
        if not isinstance(data, dict):
            raise ConfigError(f"config: [tool.poisonscan] in {str(path)!r} must be a table")
    return _validate(path, data)


def _validate(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    allowed = (*SCAN_KEYS, *EXTRA_KEYS)
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = _normalise_key(raw_key)
        where = f"config {str(path)!r}: {raw_key}"
        if key not in allowed:
            names = ", ".join(k.replace("_", "-") for k in allowed)
            raise ConfigError(f"{where}: unknown setting; use one of {names}")
        if key == "detectors":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: give a list of detector ids, e.g. [\"trigger\"]")
            if not value:
                raise ConfigError(f"{where}: the list is empty; name at least one detector, or "
                                  "leave the setting out to run all")
            value = tuple(value)
        elif key == "skip_bad_records":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: give true or false, not {value!r}")
        elif key in _SIZE_KEYS:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ConfigError(f"{where}: give a size such as \"512MB\" or a byte count")
        elif key in _INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: give an integer, not {value!r}")
        elif key in _STR_KEYS or key in _PATH_KEYS or key in EXTRA_KEYS:
            if not isinstance(value, str):
                raise ConfigError(f"{where}: give a string, not {value!r}")
            if key == "baseline" or key in _PATH_KEYS:
                value = str((path.parent / value).resolve()) if not os.path.isabs(value) else value
        out[key] = value
    return out


def _scanned_directories(paths: Sequence[str]) -> list[Path]:
    """The directories a scan of ``paths`` reads below: given directories and glob bases."""
    dirs: list[Path] = []
    for raw in paths:
        p = str(raw)
        if not os.path.exists(p) and any(c in p for c in _GLOB_CHARS):
            cut = min(p.index(c) for c in _GLOB_CHARS if c in p)
            base = os.path.dirname(p[:cut]) or "."
            dirs.append(Path(base).resolve())
        elif os.path.isdir(p):
            dirs.append(Path(p).resolve())
    return dirs


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def discover_config(start: Path, scanned: Sequence[str] = ()) -> ConfigSource | None:
    """The first config file from ``start`` upwards that does not lie inside the scanned data."""
    data_dirs = _scanned_directories(scanned)
    ignored: list[Path] = []
    directory = start.resolve()
    for d in (directory, *directory.parents):
        for name in CONFIG_NAMES:
            candidate = d / name
            if not candidate.is_file():
                continue
            if any(_inside(d, data) for data in data_dirs):
                if name == "poisonscan.toml" or read_config_file(candidate) is not None:
                    ignored.append(candidate)
                continue
            values = read_config_file(candidate)
            if values is None:
                continue
            return ConfigSource(candidate, values, tuple(ignored))
    if ignored:
        return ConfigSource(Path(), {}, tuple(ignored))
    return None


def resolve(
    paths: Sequence[str],
    flags: Mapping[str, Any],
    *,
    config_file: str | None = None,
    use_files: bool = True,
    cwd: Path | None = None,
) -> Effective:
    """Merge defaults, the config file and the command-line ``flags`` into the effective config.

    ``flags`` holds only the options given on the command line (ScanConfig keys and ``baseline``).
    """
    values: dict[str, Any] = {}
    source: Path | None = None
    notes: list[str] = []
    if config_file is not None:
        path = Path(config_file)
        if path.is_dir():
            raise ConfigError(f"--config: {config_file!r} is a directory; give the config file "
                              "(poisonscan.toml or pyproject.toml)")
        if not path.is_file():
            raise ConfigError(f"--config: no such file {config_file!r}")
        read = read_config_file(path)
        if read is None:
            raise ConfigError(f"--config: {config_file!r} has no [tool.poisonscan] table")
        values, source = read, path.resolve()
    elif use_files:
        found = discover_config(cwd or Path.cwd(), paths)
        if found is not None:
            for skipped in found.ignored:
                notes.append(
                    f"ignoring {skipped}: it lies inside the scanned data, which must not "
                    f"configure its own scan; pass --config {skipped} to use it"
                )
            if found.values or found.path != Path():
                values, source = dict(found.values), found.path
                beside = {Path(p).resolve().parent for p in paths if os.path.isfile(p)}
                if found.values and found.path.resolve().parent in beside:
                    # Not inside scanned data (the files were named), but where a dataset's
                    # own file would be: say so, so that it cannot change the scan unseen.
                    settings = ", ".join(f"{k.replace('_', '-')} = {_toml_value(v)}"
                                         for k, v in sorted(found.values.items()))
                    notes.append(f"using settings from {found.path}, which lies beside the "
                                 f"scanned files: {settings}; pass --no-config to ignore it")
    values.update({k: v for k, v in flags.items() if v is not None})
    baseline = values.pop("baseline", None)
    try:
        config = ScanConfig(paths=tuple(paths), **values)
    except ConfigError as exc:
        # ScanConfig names its field ("memory_budget: ..."); name what the user wrote instead:
        # the flag, or the config file's key.
        message = str(exc)
        key, sep, rest = message.partition(":")
        if sep and key in flags:
            message = f"--{key.replace('_', '-')}:{rest}"
        elif sep and key in values and source is not None:
            message = f"{key.replace('_', '-')}:{rest} (in {source})"
        elif source is not None:
            message = f"{message} (settings read from {source} and the command line)"
        raise ConfigError(message) from None
    return Effective(config, source, baseline, tuple(notes))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON string


def to_toml(effective: Effective, version: str) -> str:
    """The effective configuration as a ``poisonscan.toml`` (copy it, or put it under
    ``[tool.poisonscan]`` in ``pyproject.toml``)."""
    lines = [
        f"# poisonscan {version}: effective configuration",
        f"# source: {effective.source or 'defaults and command-line flags (no config file)'}",
        "# in pyproject.toml, put these keys under [tool.poisonscan]",
    ]
    for key, value in effective.config.to_dict().items():
        name = key.replace("_", "-")
        if value is None:
            lines.append(f"# {name} = (not set)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    if effective.baseline is not None:
        lines.append(f"baseline = {_toml_value(effective.baseline)}")
    return "\n".join(lines) + "\n"


def to_json(effective: Effective, version: str) -> str:
    """The effective configuration as JSON: ``{"poisonscan_version", "source", "config"}``."""
    config = effective.config.to_dict()
    if effective.baseline is not None:
        config["baseline"] = effective.baseline
    doc = {
        "poisonscan_version": version,
        "source": str(effective.source) if effective.source else None,
        "config": dict(sorted(config.items())),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
