"""``prefect-agent-bootstrap``: the container's start-up steps, together or one at a time.

  entrypoint -- CMD   (the image's entrypoint) drop root, install extras, exec CMD
  run                 wait for the server, tenant, projects, then exec the agent
  wait | tenant | projects | agent [--print] | settings | healthcheck

Every setting is an option here, a ``BOOTSTRAP_*`` variable, or a key of the YAML file.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import click
import yaml

from bootstrap import __version__, kubernetes
from bootstrap.agent import agent_launch, exec_agent, preflight
from bootstrap.errors import BootstrapError, SettingsError
from bootstrap.extras import install_extras
from bootstrap.log import MASK, configure_logging, logger, mask, register_secrets
from bootstrap.privileges import drop_privileges
from bootstrap.projects import ensure_projects
from bootstrap.server import PrefectApi, resolve_api
from bootstrap.settings import (
    ENV_PREFIX,
    LogLevel,
    Settings,
    env_name,
    is_secret_name,
    load_settings,
)
from bootstrap.tenant import ensure_tenant, find_tenant
from bootstrap.wait import wait_for_server

PROG = "prefect-agent-bootstrap"
DEFAULT_COMMAND = (PROG, "run")


# Settings as options ----------------------------------------------------------------------


def _parse_pairs(ctx: click.Context, param: click.Parameter, values: Tuple[str, ...]) -> Any:
    if not values:
        return None
    pairs: Dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        pairs[key] = value
    return pairs


def _settings_option(name: str) -> Callable:
    field = Settings.__fields__[name]
    flag = "--" + name.replace("_", "-")
    help_text = f"{field.field_info.description} [env: {env_name(name)}]"
    if field.outer_type_ is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
    if field.shape != 1:  # List[...] or Dict[...]
        if field.outer_type_ == Dict[str, str]:
            return click.option(
                flag,
                name,
                multiple=True,
                callback=_parse_pairs,
                metavar="KEY=VALUE",
                help=help_text,
            )
        return click.option(flag, name, multiple=True, help=help_text)
    return click.option(flag, name, default=None, help=help_text)


def settings_options(command: Callable) -> Callable:
    """Add one option per setting, plus --settings-file; pass ``settings`` to the command."""

    @functools.wraps(command)
    def wrapper(settings_file: Optional[Path], **kwargs: Any) -> Any:
        cli_values = {
            name: kwargs.pop(name)
            for name in list(kwargs)
            if name in Settings.__fields__ and kwargs[name] not in (None, ())
        }
        for name in Settings.__fields__:
            kwargs.pop(name, None)
        settings = load_settings(cli_values, settings_file)
        configure_logging(settings.log_level.value)
        register_secrets(settings.secret_values())
        return command(settings=settings, **kwargs)

    for name in reversed(list(Settings.__fields__)):
        wrapper = _settings_option(name)(wrapper)
    return click.option(
        "--settings-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"YAML file of settings [env: {ENV_PREFIX}SETTINGS_FILE]",
    )(wrapper)


def _api() -> PrefectApi:
    config = resolve_api(os.environ)
    if config.api_key:
        register_secrets([config.api_key])
    return PrefectApi(config)


def _tenant_id(api: PrefectApi, settings: Settings) -> str:
    return ensure_tenant(api, settings.tenant, settings.tenant_slug or settings.tenant)


def _job_template(settings: Settings) -> Optional[str]:
    """Kubernetes agent: write the flow-run Job template rendered from the settings."""
    path = kubernetes.prepare_job_template(settings)
    if path:
        logger.info("Flow-run Job template written to %s", path)
    return path


# Commands ----------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Bootstrap a Prefect 1.x agent container: extras, server, tenant, projects, agent."""


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def entrypoint(command: Tuple[str, ...]) -> None:
    """The image's entrypoint: prepare the container, then exec COMMAND.

    As root, switches to the runtime user (adding the Docker socket's group); then
    installs EXTRA_CONDA_PACKAGES and EXTRA_PIP_PACKAGES; then execs COMMAND (default:
    prefect-agent-bootstrap run), which becomes the container's main process.
    """
    level = os.environ.get(f"{ENV_PREFIX}LOG_LEVEL", "INFO").upper()
    configure_logging(level if level in LogLevel.__members__ else "INFO")  # run says what's wrong
    logger.debug("Entrypoint started (uid %d): preparing the container", os.getuid())
    drop_privileges(os.environ)
    install_extras(os.environ)
    argv = list(command or DEFAULT_COMMAND)
    if os.path.basename(argv[0]) == PROG:
        # The bootstrap itself (the default command): go on in this process rather than start
        # Python again (0.2 s); `run` still execs the agent, which becomes the main process.
        cli.main(args=argv[1:], prog_name=PROG, standalone_mode=False)
        return
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise BootstrapError(f"cannot run {argv[0]!r}: {exc.strerror}") from None


@cli.command()
@settings_options
def run(settings: Settings) -> None:
    """Wait for the server, ensure tenant and projects, then exec the agent."""
    started = time.monotonic()
    api = _api()
    wait_for_server(api, settings.wait_timeout)
    tenant_id = _tenant_id(api, settings)
    ensure_projects(api, tenant_id, settings.projects)
    preflight(settings, os.environ)
    launch = agent_launch(settings, api.config, tenant_id, os.environ, _job_template(settings))
    logger.info("Bootstrap done in %.2f s", time.monotonic() - started)
    exec_agent(launch)


@cli.command()
@settings_options
def wait(settings: Settings) -> None:
    """Wait until the Prefect Server answers (BOOTSTRAP_WAIT_TIMEOUT)."""
    wait_for_server(_api(), settings.wait_timeout)


@cli.command()
@settings_options
def tenant(settings: Settings) -> None:
    """Ensure the tenant exists; print its id."""
    click.echo(_tenant_id(_api(), settings))


@cli.command()
@settings_options
def projects(settings: Settings) -> None:
    """Ensure the tenant and its projects exist; print "name<TAB>id" lines."""
    api = _api()
    for name, project_id in ensure_projects(
        api, _tenant_id(api, settings), settings.projects
    ).items():
        click.echo(f"{name}\t{project_id}")


@cli.command()
@click.option(
    "--print", "print_only", is_flag=True, help="Print the command instead of running it."
)
@click.option("--tenant-id", default=None, help="Use this tenant id instead of looking it up.")
@settings_options
def agent(settings: Settings, print_only: bool, tenant_id: Optional[str]) -> None:
    """Start the agent (the tenant must exist), or --print its command line."""
    api = _api()
    if tenant_id is None:
        tenant_id = find_tenant(api, settings.tenant_slug or settings.tenant)
        if tenant_id is None:
            raise BootstrapError(
                f"tenant {settings.tenant_slug!r} does not exist: run "
                "'prefect-agent-bootstrap tenant' first, or pass --tenant-id"
            )
    launch = agent_launch(settings, api.config, tenant_id, os.environ, _job_template(settings))
    if print_only:
        click.echo(launch.render())
        return
    preflight(settings, os.environ)
    exec_agent(launch)


@cli.command("settings")
@settings_options
def show_settings(settings: Settings) -> None:
    """Print the effective settings as YAML (secret values masked)."""
    values = settings.dict()
    values["projects"] = [
        {key: value for key, value in project.items() if value is not None}
        for project in values["projects"]
    ]
    values["agent_env"] = {
        key: MASK if is_secret_name(key) else value for key, value in settings.agent_env.items()
    }
    click.echo(yaml.safe_dump(_plain(values), sort_keys=False), nl=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return getattr(value, "value", value)  # enums


@cli.command()
def healthcheck() -> None:
    """Exit 0 if the agent in this container is healthy (or there is no agent)."""
    from bootstrap.healthcheck import check, main_process

    verdict = check(main_process())
    click.echo(verdict.reason)
    sys.exit(0 if verdict.healthy else 1)


@cli.group("kubernetes")
def kubernetes_group() -> None:
    """Run the agent in Kubernetes: its manifests and the flow-run Job template."""


@kubernetes_group.command()
@click.option(
    "--env",
    "extra_env",
    multiple=True,
    callback=_parse_pairs,
    metavar="NAME=VALUE",
    help="Also set NAME=VALUE in the agent container (e.g. EXTRA_PIP_PACKAGES); no secrets.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a kustomize base (one file per object, kustomization.yaml) to this directory "
    "instead of printing the manifests.",
)
@settings_options
def manifest(
    settings: Settings, extra_env: Optional[Dict[str, str]], output_dir: Optional[Path]
) -> None:
    """Print the manifests deploying the agent: ServiceAccount, Role, RoleBinding, Deployment.

    Rendered from the same settings as the bootstrap (kubernetes_image is required). The
    Prefect API URL is kubernetes_prefect_api, else this environment's PREFECT__CLOUD__API
    (or PREFECT__SERVER__*). An API key is never written: see kubernetes_api_key_secret.
    """
    for name in extra_env or {}:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name.startswith(ENV_PREFIX):
            raise SettingsError(
                f"--env {name}=...: not a variable name, or a BOOTSTRAP_* setting (set those "
                "as settings)"
            )
    api = resolve_api(os.environ)
    api_url = settings.kubernetes_prefect_api or api.url
    objects = kubernetes.manifests(settings, api_url, extra_env or {})
    warning = kubernetes.api_url_warning(api_url)
    if warning:
        logger.warning("%s", warning)
    if api.api_key and not settings.kubernetes_api_key_secret:
        logger.warning(
            "PREFECT__CLOUD__API_KEY is set here but is not written into the manifests: "
            "store it in a Secret and set kubernetes_api_key_secret"
        )
    if output_dir is None:
        click.echo(kubernetes.dump(objects), nl=False)
        return
    files = kubernetes.kustomize_base(objects)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (output_dir / name).write_text(text)
        click.echo(output_dir / name)


@kubernetes_group.command("job-template")
@settings_options
def job_template(settings: Settings) -> None:
    """Print the flow-run Job template the agent gets (--job-template) from these settings."""
    click.echo(yaml.safe_dump(kubernetes.job_template(settings), sort_keys=False), nl=False)


def main(argv: Optional[Sequence[str]] = None) -> None:
    try:
        cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except BootstrapError as exc:
        message = mask(str(exc))
        if logger.handlers:
            logger.error("%s", message)
        else:
            click.echo(f"error: {message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, the traceback only when debugging
        logger.debug("Unexpected error", exc_info=exc)
        message = mask(f"unexpected {type(exc).__name__}: {exc}")
        click.echo(f"error: {message} (a bug: BOOTSTRAP_LOG_LEVEL=DEBUG shows where)", err=True)
        sys.exit(1)
