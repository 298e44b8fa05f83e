"""Where the CLI finds its URL and key: the environment, or a profile file.

    # ~/.config/opsdeck/profiles.toml (or $OPSDECK_CONFIG); keep it private (chmod 600)
    [default]
    url = "https://opsdeck.example"
    key_id = "key_…"
    secret = "sk_…"

With `--profile NAME` (or OPSDECK_PROFILE) the named profile is used as it is. Otherwise
OPSDECK_URL, OPSDECK_KEY_ID and OPSDECK_SECRET, each one missing taken from `[default]`.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads profiles when tomli is installed
    try:
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:
        tomllib = None

ENV = {"url": "OPSDECK_URL", "key_id": "OPSDECK_KEY_ID", "secret": "OPSDECK_SECRET"}


class ConfigError(Exception):
    """The CLI cannot tell which server or key to use."""


@dataclass(frozen=True)
class Settings:
    url: str
    key_id: str
    secret: str


def config_path(environ: Mapping[str, str]) -> Path:
    if environ.get("OPSDECK_CONFIG"):
        return Path(environ["OPSDECK_CONFIG"]).expanduser()
    base = Path(environ.get("XDG_CONFIG_HOME") or Path(environ.get("HOME", "~")) / ".config").expanduser()
    return base / "opsdeck" / "profiles.toml"


def load_profiles(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    if tomllib is None:
        raise ConfigError(f"reading {path} needs Python 3.11 or the tomli package")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"opsdeck: warning: {path} holds secrets and others can read it (chmod 600 it)", file=sys.stderr)
    try:
        with path.open("rb") as file:
            profiles: dict[str, Any] = tomllib.load(file)
            return profiles
    except (OSError, ValueError) as err:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"{path}: {err}") from None


def resolve(profile: str | None, environ: Mapping[str, str]) -> Settings:
    """The settings to use (see the module's docstring); ConfigError when one is missing."""
    profile = profile or environ.get("OPSDECK_PROFILE") or None
    path = config_path(environ)
    profiles = load_profiles(path)
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(f"no profile [{profile}] in {path}")
        found = {name: str(profiles[profile].get(name) or "") for name in ENV}
        where = f"profile [{profile}] in {path}"
    else:
        default = profiles.get("default", {})
        found = {name: environ.get(var) or str(default.get(name) or "") for name, var in ENV.items()}
        where = f"the environment ({', '.join(ENV.values())}) or [default] in {path}"
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise ConfigError(f"no {', '.join(missing)} in {where}")
    return Settings(**found)
