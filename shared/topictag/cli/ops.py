"""Operating the system: status, the store's schema, API keys, the settings reference."""

from __future__ import annotations

from typing import Annotated

import typer

from topictag.cli.app import app, configured_store
from topictag.logs import setup_logging
from topictag.settings import get_settings


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    broker_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the broker.")] = 5.0,
) -> None:
    """Consumer lag per group, tagging rates, teacher labels, the production adapter and the
    last training. Without a reachable broker it says so and reports the rest."""
    import logging

    from topictag.status import gather_status

    setup_logging("status", level="WARNING")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # an unreachable broker is reported below
    with configured_store() as store:
        report = gather_status(get_settings(), store, broker_timeout_s=broker_timeout)
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        _print_status(report)


def _print_status(report) -> None:
    from rich.console import Console
    from rich.table import Table

    def when(ts) -> str:
        return f"{ts:%Y-%m-%d %H:%M:%S} UTC" if ts else "-"

    console = Console()
    lag = Table("topic", "group", "lag", title="Consumer lag")
    for row in report.lag:
        lag.add_row(row.topic, row.group, "?" if row.lag is None else str(row.lag))
    console.print(lag)
    if report.broker_error:
        console.print(f"[yellow]{report.broker_error}[/yellow]")

    rates = Table("window", "papers tagged", "per minute", title=f"Tagging ({report.tagged.total} papers in all)")
    for w in report.tagged.windows:
        rates.add_row(f"last {w.minutes} min", str(w.papers), f"{w.per_minute:g}")
    console.print(rates)

    model = Table("", "", title="Labels and adapters", show_header=False)
    model.add_row("teacher labels", f"{report.teacher_labels.count} (last {when(report.teacher_labels.last_labelled_at)})")
    adapter = report.production_adapter
    model.add_row(
        "production adapter",
        f"{adapter.version}: BLEU-3 {adapter.bleu3}, ROUGE-1 F {adapter.rouge1_f}, promoted {when(adapter.promoted_at)}"
        if adapter else "base model (no adapter promoted)",
    )
    run = report.last_training
    model.add_row(
        "last training",
        f"{run.request_id}: {run.status}{f' ({run.version})' if run.version else ''}, started {when(run.started_at)}, "
        f"finished {when(run.finished_at)}; {run.detail}" if run else "none yet",
    )
    console.print(model)


apikey_app = typer.Typer(help="API keys for the gateway's write endpoints.", no_args_is_help=True)


app.add_typer(apikey_app, name="apikey")


db_app = typer.Typer(help="The store's schema: its migration and upgrades.", no_args_is_help=True)


app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Migration to upgrade to.")] = "head",
) -> None:
    """Migrate the store to this release's schema (services also do it when they start).
    Safe to run while services run, and more than once."""
    from topictag.store import Store
    from topictag.store.schema import upgrade

    setup_logging("db", level="INFO")
    store = Store(get_settings().store_url)
    try:
        typer.echo(f"store schema at {upgrade(store.engine, revision)}")
    finally:
        store.close()


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Argument(help="What the migration changes, e.g. 'papers: confidence'.")]) -> None:
    """For developers: write a migration for the difference between the models and the
    newest migration (to review before committing)."""
    import tempfile

    from alembic import command
    from alembic.script import Script

    from topictag.store import Store
    from topictag.store.schema import alembic_config, head, upgrade

    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{scratch}/schema.db")
        try:
            upgrade(store.engine)
            with store.engine.begin() as conn:
                # Numbered in order (0001, 0002, ...), so the folder lists the history.
                rev_id = f"{int(head()) + 1:04d}"
                script = command.revision(alembic_config(conn), message, autogenerate=True, rev_id=rev_id)
        finally:
            store.close()
    assert isinstance(script, Script)  # one head, one new revision
    typer.echo(f"wrote {script.path}")


@db_app.command("current")
def db_current() -> None:
    """The store's migration and this release's newest; exit code 1 when they differ."""
    from topictag.store import Store
    from topictag.store.schema import current, head

    store = Store(get_settings().store_url)
    try:
        at, newest = current(store.engine), head()
    finally:
        store.close()
    typer.echo(f"store at {at or 'nothing (empty, or made before migrations)'}; this release needs {newest}")
    if at != newest:
        raise typer.Exit(1)


@apikey_app.command("create")
def apikey_create(name: Annotated[str, typer.Argument(help="Who or what the key is for.")]) -> None:
    """Create a key and print it (once: only its hash is stored)."""
    from topictag.gateway.auth import create_key

    try:
        with configured_store() as store:
            typer.echo(create_key(store, name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="Name the key was created with.")]) -> None:
    """Revoke a key; requests with it get 403 from then on."""
    from topictag.gateway.auth import revoke_key

    with configured_store() as store:
        revoked = revoke_key(store, name)
    if not revoked:
        raise typer.BadParameter(f"no active API key named {name!r}")
    typer.echo(f"revoked {name}")


@app.command("settings")
def settings_cmd(
    markdown: Annotated[
        bool, typer.Option(help="The Markdown reference (docs/settings.md); --no-markdown: NAME=default lines.")
    ] = True,
) -> None:
    """Print every setting with its environment variable, default and description."""
    from topictag.settings_doc import settings_reference

    typer.echo(settings_reference(markdown=markdown), nl=False)
