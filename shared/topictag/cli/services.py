"""Running the services: the whole system (demo), each service alone, the broker."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from topictag.cli.app import app
from topictag.logs import setup_logging
from topictag.settings import get_settings


def _default_papers() -> Path:
    return get_settings().sample_papers_file


@app.command()
def demo(
    papers: Annotated[Optional[Path], typer.Option(help="JSONL, CSV or Parquet file of papers.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Publish only the first N papers.")] = None,
    exit_when_done: Annotated[bool, typer.Option(help="Exit once every paper is processed.")] = False,
    loop: Annotated[
        bool,
        typer.Option(help="Also run the labeler (recorded teacher) and the trainer, and stream the teacher's "
                     "papers first, so an adapter is trained, promoted and swapped in while the demo runs."),
    ] = False,
) -> None:
    """Run the whole system on this machine and stream papers through it.

    Prints progress to stderr; with --exit-when-done, the last line on stdout is a JSON
    summary (papers, tagged, dlq, seconds, papers_per_s, gateway_url).
    """
    from topictag.demo import Demo

    setup_logging("demo", level="WARNING")
    settings = get_settings()
    papers = papers or _default_papers()
    if not papers.exists():
        raise typer.BadParameter(f"no such file: {papers}", param_hint="--papers")
    try:
        summary = Demo(settings, papers, limit, loop=loop).run(exit_when_done)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return
    print(json.dumps(summary))
    if not summary["gateway_ok"]:
        raise typer.Exit(1)


@app.command()
def tagger() -> None:
    """Run a tagger worker: consume papers, tag them with the student, store the topics."""
    from topictag.tagger.service import run_tagger

    setup_logging("tagger")
    run_tagger(get_settings())


@app.command()
def labeler() -> None:
    """Run a labeler worker: send a sampled share of papers to the teacher, store its labels."""
    from topictag.labeler.service import run_labeler

    setup_logging("labeler")
    run_labeler(get_settings())


@app.command()
def gateway(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (default from settings).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind (default from settings).")] = None,
) -> None:
    """Serve the HTTP API (docs at /docs)."""
    from topictag.gateway.app import serve

    setup_logging("gateway")
    serve(get_settings(), host, port)


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (in memory) in the foreground."""
    from topictag.bus.embedded import EmbeddedBroker

    with EmbeddedBroker(port) as b:
        typer.echo(f"broker at {b.bootstrap}; Ctrl-C stops it")
        assert b.process is not None  # started on entering the with
        try:
            b.process.wait()
        except KeyboardInterrupt:
            pass


trainer_app = typer.Typer(help="The trainer: Celery worker and beat schedule.", no_args_is_help=True)


app.add_typer(trainer_app, name="trainer")


@trainer_app.command("worker")
def trainer_worker(
    beat: Annotated[bool, typer.Option(help="Also run the beat schedule in this process.")] = False,
) -> None:
    """Run the Celery worker that trains, evaluates and promotes adapters."""
    from topictag.trainer.tasks import run_trainer

    setup_logging("trainer")
    run_trainer(get_settings(), "worker", with_beat=beat)


@trainer_app.command("beat")
def trainer_beat() -> None:
    """Run the beat schedule alone (one per deployment)."""
    from topictag.trainer.tasks import run_trainer

    setup_logging("trainer-beat")
    run_trainer(get_settings(), "beat")
