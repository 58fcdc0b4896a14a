"""``prefect-agent-bootstrap``: the container's start-up steps, together or one at a time.

  entrypoint -- CMD   (the image's entrypoint) drop root, install extras, exec CMD
  run                 wait for the server, tenant, projects, then exec the agent
  wait | tenant | projects | agent [--print] | settings | healthcheck | doctor | kubernetes ...

Every setting is an option here, a ``BOOTSTRAP_*`` variable, or a key of the YAML file.
The steps themselves are :mod:`bootstrap.startup` and :mod:`bootstrap.container`; this
module only parses and prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import click
import yaml

from bootstrap import __version__, container, startup
from bootstrap.agent.command import agent_launch, exec_agent
from bootstrap.api.connect import connect
from bootstrap.cli.options import pairs_option, settings_options
from bootstrap.console import HELP_WORDS, PROG, exit_code_for
from bootstrap.settings import Settings
from bootstrap.settings.encoding import as_data
from bootstrap.startup.step1_wait import wait_for_server
from bootstrap.startup.step2_tenant import ensure_tenant, existing_tenant
from bootstrap.startup.step3_projects import ensure_projects
from bootstrap.startup.step5_launch import launch_agent
from bootstrap.util.errors import BootstrapError
from bootstrap.util.log import logger

DEFAULT_COMMAND = (PROG, "run")


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
    argv = list(command or DEFAULT_COMMAND)
    if argv[0] in HELP_WORDS:  # docker run IMAGE --help: the bootstrap's help, nothing else
        cli.main(args=["--help"], prog_name=PROG, standalone_mode=False)
        return
    if argv[0] in cli.commands and argv[0] != "entrypoint":  # docker run IMAGE settings
        argv = [PROG, *argv]
    container.prepare_container(os.environ, argv)
    own_args = container.is_bootstrap(argv, PROG)
    if own_args is not None:
        # The bootstrap itself (the default command): go on in this process rather than start
        # Python again (0.2 s); `run` still execs the agent, which becomes the main process.
        cli.main(args=own_args, prog_name=PROG, standalone_mode=False)
        return
    container.exec_command(argv)


@cli.command()
@settings_options()
def run(settings: Settings) -> None:
    """Wait for the server, ensure tenant and projects, then exec the agent."""
    startup.run(settings, os.environ)


@cli.command()
@settings_options("logging", "wait")
def wait(settings: Settings) -> None:
    """Wait until the Prefect Server answers (BOOTSTRAP_WAIT_TIMEOUT)."""
    wait_for_server(connect(os.environ), settings.wait_timeout)


@cli.command()
@settings_options("logging", "wait", "tenant")
def tenant(settings: Settings) -> None:
    """Ensure the tenant exists; print its id."""
    click.echo(ensure_tenant(connect(os.environ), settings.tenant, settings.tenant_slug))


@cli.command()
@settings_options("logging", "wait", "tenant", "projects")
def projects(settings: Settings) -> None:
    """Ensure the tenant and its projects exist; print "name<TAB>id" lines."""
    api = connect(os.environ)
    tenant = ensure_tenant(api, settings.tenant, settings.tenant_slug)
    for name, project_id in ensure_projects(api, tenant, settings.projects).items():
        click.echo(f"{name}\t{project_id}")


@cli.command()
@click.option(
    "--print", "print_only", is_flag=True, help="Print the command instead of running it."
)
@click.option("--tenant-id", default=None, help="Use this tenant id instead of looking it up.")
@settings_options("logging", "tenant", "agent", "docker", "kubernetes", "local")
def agent(settings: Settings, print_only: bool, tenant_id: Optional[str]) -> None:
    """Start the agent (the tenant must exist), or --print its command line."""
    api = connect(os.environ)
    tenant = tenant_id or existing_tenant(api, settings.tenant_slug)
    if print_only:
        click.echo(agent_launch(settings, api.config, tenant, os.environ).render())
        return
    exec_agent(launch_agent(settings, api, tenant, os.environ))


@cli.command()
@click.option(
    "--late-after",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds past its start time before a Scheduled run counts as Late.",
)
@click.option(
    "--submitted-after",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds in Submitted before a run counts as stuck (Lazarus acts at 600).",
)
@settings_options("logging", "docker")
def doctor(settings: Settings, late_after: float, submitted_after: float) -> None:
    """Explain stuck runs: the server, tenants and projects, agents and their labels, Late
    and Submitted runs with the reason each cannot start, prefect versions. Exits 1 if it
    finds a problem (3: the server does not answer)."""
    from bootstrap.doctor import doctor as examine
    from bootstrap.util.engine import docker_engine_url

    engine = docker_engine_url(settings.docker_base_url, os.environ)
    status = examine(connect(os.environ), os.environ, late_after, submitted_after, engine)
    sys.exit(status)


@cli.command("settings")
@settings_options()
def show_settings(settings: Settings) -> None:
    """Print the effective settings as YAML (secret values masked)."""
    click.echo(yaml.safe_dump(as_data(settings), sort_keys=False), nl=False)


@cli.command()
def healthcheck() -> None:
    """Exit 0 if the agent in this container is healthy (or there is no agent)."""
    from bootstrap.root.healthcheck import main as healthcheck_main

    sys.exit(healthcheck_main())


@cli.group("extras")
def extras_group() -> None:
    """Extra packages (EXTRA_CONDA_PACKAGES, EXTRA_PIP_PACKAGES): the core they may not change."""


@extras_group.command()
def protected() -> None:
    """Print the image's core: the distributions extra packages may not change, at their
    versions, and what needs each (the bootstrap, prefect, LUME's packages)."""
    from bootstrap.extras.core import core_of
    from bootstrap.extras.environment import inspect_env
    from bootstrap.extras.variables import ExtrasEnv

    for line in core_of(inspect_env(ExtrasEnv.read(os.environ).prefix)).describe():
        click.echo(line)


@cli.group("kubernetes")
def kubernetes_group() -> None:
    """Run the agent in Kubernetes: its manifests and the flow-run Job template."""


@kubernetes_group.command()
@click.option(
    "--env",
    "extra_env",
    multiple=True,
    callback=pairs_option,
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
@settings_options()
def manifest(
    settings: Settings, extra_env: Optional[Dict[str, str]], output_dir: Optional[Path]
) -> None:
    """Print the manifests deploying the agent: ServiceAccount, Role, RoleBinding, Deployment.

    Rendered from the same settings as the bootstrap (kubernetes_image is required). The
    Prefect API URL is kubernetes_prefect_api, else this environment's PREFECT__CLOUD__API
    (or PREFECT__SERVER__*). An API key is never written: see kubernetes_api_key_secret.
    """
    from bootstrap.kubernetes import kustomize, manifests

    objects, warnings = manifests.for_environment(settings, os.environ, extra_env or {})
    for warning in warnings:
        logger.warning("%s", warning)
    if output_dir is None:
        click.echo(manifests.dump(objects), nl=False)
        return
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, text in kustomize.kustomize_base(objects).items():
            (output_dir / name).write_text(text)
            click.echo(output_dir / name)
    except OSError as exc:
        raise BootstrapError(
            f"cannot write the kustomize base to {output_dir}: {exc.strerror} (uid "
            f"{os.getuid()}). In a container, mount a directory this user may write: as "
            f"root on the host, chown {os.getuid()} DIRECTORY first; as another user, run "
            'as yourself: docker run --user "$(id -u)" -v "$PWD/base:/out" ... --output-dir /out'
        ) from None


@kubernetes_group.command("job-template")
@settings_options("logging", "agent", "kubernetes")
def job_template(settings: Settings) -> None:
    """Print the flow-run Job template the agent gets (--job-template) from these settings."""
    from bootstrap.kubernetes.job_template import job_template as render_job_template

    click.echo(yaml.safe_dump(render_job_template(settings), sort_keys=False), nl=False)


def main(argv: Optional[Sequence[str]] = None) -> None:
    try:
        cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except (BootstrapError, KeyboardInterrupt, Exception) as exc:  # one line, then exit
        sys.exit(exit_code_for(exc))
