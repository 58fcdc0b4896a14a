"""Every setting as a click option of the subcommands, generated from the settings model."""

from __future__ import annotations

import functools
import json
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import click

from bootstrap.settings import ENV_PREFIX, Settings, env_name, load_settings
from bootstrap.settings.model import MAPPING_SETTINGS, SETTING_PARTS, setting_part
from bootstrap.util.log import configure_logging, register_secrets
from bootstrap.util.values import parse_pairs


def pairs_option(ctx: click.Context, param: click.Parameter, values: Tuple[str, ...]) -> Any:
    """Callback of a repeatable ``KEY=VALUE`` option: a mapping, or None if not given."""
    if not values:
        return None
    try:
        return parse_pairs(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def json_option(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Any:
    """Callback of an option taking a JSON object (e.g. a pod affinity)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", ctx=ctx, param=param) from None


def _settings_option(name: str) -> Callable:
    field = Settings.__fields__[name]
    flag = "--" + name.replace("_", "-")
    help_text = f"{field.field_info.description} [env: {env_name(name)}]"
    if field.outer_type_ is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
    if name in MAPPING_SETTINGS:
        return click.option(
            flag, name, multiple=True, callback=pairs_option, metavar="KEY=VALUE", help=help_text
        )
    if typing.get_origin(field.outer_type_) is dict:  # an object: one JSON value
        return click.option(flag, name, callback=json_option, metavar="JSON", help=help_text)
    if field.shape != 1:  # a list
        return click.option(flag, name, multiple=True, help=help_text)
    return click.option(flag, name, default=None, help=help_text)


def settings_options(*parts: str) -> Callable[[Callable], Callable]:
    """Add one option per setting of ``parts`` (default: all), plus --settings-file; pass
    ``settings`` to the command, with logging configured and secret values registered."""
    unknown = set(parts) - set(SETTING_PARTS)
    if unknown:  # a programming error in this package, caught by any use of --help
        raise ValueError(f"unknown setting parts: {sorted(unknown)}")
    names = [name for name in Settings.__fields__ if not parts or setting_part(name) in parts]

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def wrapper(settings_file: Optional[Path], **kwargs: Any) -> Any:
            cli_values: Dict[str, Any] = {}
            for name in names:
                value = kwargs.pop(name, None)
                if value not in (None, ()):
                    cli_values[name] = value
            settings = load_settings(cli_values, settings_file)
            configure_logging(settings.log_level.value, settings.log_format.value)
            register_secrets(settings.secret_values())
            return command(settings=settings, **kwargs)

        for name in reversed(names):
            wrapper = _settings_option(name)(wrapper)
        return click.option(
            "--settings-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"YAML file of settings [env: {ENV_PREFIX}SETTINGS_FILE]",
        )(wrapper)

    return decorate
