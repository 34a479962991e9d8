"""The Prefect side of the CLI: `pst serve`, `pst quickstart` and `pst run ...`.

Loaded by pst_core.cli as an optional command module; registering also subscribes the
`pst.teacher.registered` event to pst_core's hooks, so `pst teacher add` announces new teachers.
"""

from __future__ import annotations

import os

import typer

from flows import events

run_app = typer.Typer(help="Run a flow once, in this process (results and artifacts go to the Prefect API).", no_args_is_help=True)

TEACHERS = typer.Option(None, "--teacher", "-t", help="Teacher name (repeatable; default: every registered teacher).")
TASKS = typer.Option(None, "--task", help="Task name (repeatable; default: the config's tasks).")
STRATEGIES = typer.Option(None, "--strategy", "-s", help="Strategy (repeatable; default: all five).")
CONFIG = typer.Option(None, "--config", "-c", help="Pipeline YAML with a section per stage (e.g. configs/quickstart.yaml).")


def prefect_defaults() -> None:
    """Telemetry off unless the user chose otherwise; set before Prefect is imported, so the
    temporary server the quickstart starts runs without its analytics heartbeat."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The temporary server migrates a new database first: 20 s (Prefect's default) is not enough on
    # a busy 2-core machine, where `make quickstart` then failed with "Timed out ... ephemeral server".
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@run_app.callback()
def _run_group() -> None:
    prefect_defaults()


@run_app.command("pipeline")
def run_pipeline(teacher: list[str] = TEACHERS, task: list[str] = TASKS, strategy: list[str] = STRATEGIES, config: str = CONFIG) -> None:
    """Prepare, harvest, embed, train, evaluate and report for teachers x tasks x strategies."""
    from flows.config import check_names
    from flows.pipeline import distill_pipeline
    from pst_core import settings

    check_names(settings.data_root(), teacher, task, strategy)  # one clear line, before Prefect starts
    result = distill_pipeline(teachers=teacher or None, tasks=task or None, strategies=strategy or None, config=config)
    typer.echo(result["report"]["table"])


@run_app.command("harvest")
def run_harvest(teacher: list[str] = TEACHERS, task: list[str] = TASKS, config: str = CONFIG) -> None:
    """Harvest rationales for teachers x tasks (the nightly deployment's flow)."""
    from flows.pipeline import harvest_flow

    for summary in harvest_flow(teachers=teacher or None, tasks=task or None, config=config):
        typer.echo(f"{summary['teacher']}/{summary['task']}: {summary['sent']} sent, {summary['cache_hits']} cached, {summary['failed']} failed")


def serve(
    config: str = CONFIG,
    cron: str = typer.Option("0 2 * * *", help="Schedule of the nightly harvest (cron, server time zone)."),
    limit: int = typer.Option(None, help="Most flow runs executed at once by this process."),
) -> None:
    """Register pst's deployments (schedules, the new-teacher trigger) and run them here until Ctrl-C."""
    prefect_defaults()
    from flows.deployments import serve as serve_deployments

    serve_deployments(config=config, cron=cron, limit=limit)


def quickstart(config: str = CONFIG,
               tiny: bool = typer.Option(False, "--tiny", help="The 3-minute smoke: all five strategies on a tiny random-init "
                                                                "student (configs/quickstart-tiny.yaml); its accuracies are noise.")) -> None:
    """The whole pipeline offline on the embedded defaults (the real SmolLM2-135M student); prints where to look afterwards."""
    prefect_defaults()
    from flows import quickstart as qs

    result = qs.run(config or (qs.TINY_CONFIG if tiny else None))
    typer.echo("\n".join(["", "pst quickstart: done", *qs.where_to_look(result)]))


def register(app: typer.Typer) -> None:
    """Add `serve`, `quickstart` and the `run` group; subscribe Prefect events to pst_core hooks."""
    events.install()
    app.command("serve")(serve)
    app.command("quickstart")(quickstart)
    app.add_typer(run_app, name="run")
