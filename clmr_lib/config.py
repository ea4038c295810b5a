"""Configuration as data: YAML files whose every key is overridable on the command line."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, Optional, Sequence

import yaml

from clmr_lib.errors import UserError

#: The repository's default configuration (CLMR's keys and defaults).
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "config.yaml"


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with a one-line error for a missing or malformed file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"config file {path} is a folder; pass a YAML file to --config")
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UserError(f"cannot read config file {path} ({reason}); pass a readable YAML file to --config") from exc
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise UserError(f"config file {path} is not valid YAML ({first}); fix the file") from exc
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of key: value lines")
    return data


def load_config(paths: Iterable[str | Path] = (), base: str | Path = DEFAULT_CONFIG) -> dict:
    """Merge the base config with further YAML files; keys unknown to the base are refused."""
    config = load_yaml(base)
    for path in paths:
        extra = load_yaml(path)
        unknown = sorted(set(extra) - set(config))
        if unknown:
            raise UserError(f"config file {path}: unknown key(s) {', '.join(unknown)}; see {base} for the valid keys")
        config.update(extra)
    return config


def _parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def _parse_yaml_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a valid value") from exc


_KIND_NAMES = {int: "an integer", float: "a number"}


def _typed(kind):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected {_KIND_NAMES.get(kind, kind.__name__)}, got '{text}'") from exc

    parse.__name__ = kind.__name__
    return parse


def _type_for(default):
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, int):
        return _typed(int)
    if isinstance(default, float):
        return _typed(float)
    if isinstance(default, str):
        return str
    return _parse_yaml_value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line with exit status 2 (its own convention)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser(defaults: dict, description: str, extra: Optional[Sequence[tuple]] = None) -> argparse.ArgumentParser:
    """Command line with a ``--key`` per config key, typed by the default's type.

    Args:
        defaults: The merged configuration; each key becomes a flag with that default.
        description: Shown by ``--help``.
        extra: Further ``(flags, kwargs)`` pairs for flags that are not config keys.
    """
    parser = _Parser(description=description)
    parser.add_argument("--config", action="append", default=[], metavar="YAML",
                        help="YAML file(s) overriding config/config.yaml (repeatable)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    for flags, kwargs in extra or ():
        parser.add_argument(*flags, **kwargs)
    for key, value in defaults.items():
        flag = f"--{key}"
        if flag in parser._option_string_actions:
            continue
        parser.add_argument(flag, type=_type_for(value), default=value, metavar=type(value).__name__.upper(),
                            help=f"(default: {value!r})")
    return parser


def parse_config(argv: Optional[Sequence[str]], description: str, base: str | Path = DEFAULT_CONFIG,
                 extra: Optional[Sequence[tuple]] = None, overrides: Optional[dict] = None) -> dict:
    """Parse a command line into a config dict: base YAML, then ``--config`` files, then flags.

    Args:
        argv: Arguments (``None``: ``sys.argv[1:]``).
        description: ``--help`` text.
        base: The base YAML file.
        extra: Non-config flags, as for :func:`build_parser`.
        overrides: Defaults a particular entry point changes before the command line applies.
    """
    pre = _Parser(add_help=False)
    pre.add_argument("--config", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    config = load_config(known.config, base=base)
    config.update(overrides or {})
    args = build_parser(config, description, extra).parse_args(argv)
    return vars(args)
