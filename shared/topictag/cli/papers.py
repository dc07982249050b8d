"""Papers in: ingesting files and arXiv, re-tagging, rebuilding the topic index."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from typer.core import TyperGroup

from topictag.bootstrap import Parts
from topictag.cli.app import app, configured_store
from topictag.logs import setup_logging
from topictag.settings import get_settings


class _IngestGroup(TyperGroup):
    """`ingest FILE` stays the short form of `ingest file FILE` beside `ingest arxiv`: a first
    argument that is no subcommand (nor --help) is taken as the file command's."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["file", *args]
        return super().parse_args(ctx, args)


ingest_app = typer.Typer(
    cls=_IngestGroup,
    no_args_is_help=True,
    help="Publish papers to the papers topic (TOPICTAG_KAFKA_BOOTSTRAP), from a file or live from arXiv.\n\n"
    "topictag ingest FILE [--limit N]   (short for: topictag ingest file FILE)\n\n"
    "topictag ingest arxiv [--category C ...] [--since DATE] [--follow] [--source api|oai] [--limit N]",
)


app.add_typer(ingest_app, name="ingest")


@ingest_app.command("file")
def ingest_file(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file of papers.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Publish only the first N rows.")] = None,
) -> None:
    """Publish papers from a file to the papers topic (TOPICTAG_KAFKA_BOOTSTRAP)."""
    from topictag.bus.kafka import ensure_topics, make_producer
    from topictag.ingest import PublishError, publish_file

    settings = get_settings()
    if not settings.kafka.bootstrap:
        raise typer.BadParameter("set TOPICTAG_KAFKA_BOOTSTRAP to the broker to publish to")
    if not path.exists():
        raise typer.BadParameter(f"no such file: {path}", param_hint="PATH")
    ensure_topics(settings.kafka)
    producer = make_producer(settings.kafka)
    try:
        report = publish_file(producer, settings.kafka.papers_topic, path, limit)
    except PublishError as exc:
        typer.echo(f"error: {exc}. Publishing the file again is safe: papers are stored once by arxiv_id.", err=True)
        raise typer.Exit(1) from None
    finally:
        producer.close()
    typer.echo(f"published {report.published} papers to {settings.kafka.papers_topic}")


@ingest_app.command("arxiv")
def ingest_arxiv(
    category: Annotated[
        Optional[list[str]],
        typer.Option(help="arXiv category, e.g. cs.LG; repeat for more. Default: TOPICTAG_ARXIV_CATEGORIES."),
    ] = None,
    since: Annotated[
        Optional[datetime],
        typer.Option(formats=["%Y-%m-%d"], help="Papers from this day on. Default: TOPICTAG_ARXIV_LOOKBACK_DAYS ago."),
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="Poll again every TOPICTAG_ARXIV_FOLLOW_INTERVAL_S until Ctrl-C.")
    ] = False,
    source: Annotated[
        Literal["api", "oai"], typer.Option(help="arXiv's search API or its OAI-PMH interface.")
    ] = "api",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Stop after publishing N papers.")] = None,
) -> None:
    """Poll arXiv for new papers (and new versions) and publish each once to the papers topic."""
    from topictag.ingest import PublishError
    from topictag.sources.arxiv import ArxivError, ingest_arxiv

    setup_logging("ingest", level="WARNING")
    settings = get_settings()
    if not settings.kafka.bootstrap:
        raise typer.BadParameter("set TOPICTAG_KAFKA_BOOTSTRAP to the broker to publish to")
    try:
        summary = ingest_arxiv(settings, protocol=source, categories=category, since=since.date() if since else None,
                               limit=limit, follow=follow, on_pass=lambda s: typer.echo(f"pass: {s}"),
                               say=lambda line: typer.echo(line, err=True))
    except (ArxivError, PublishError) as exc:
        typer.echo(f"error: {exc}. Running again is safe: what was published is remembered in "
                   f"{settings.arxiv_seen_file}.", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"arxiv {source} to {settings.kafka.papers_topic}: {summary}")


@app.command()
def retag(
    limit: Annotated[Optional[int], typer.Option(min=1, help="Re-tag at most N papers.")] = None,
    wait: Annotated[bool, typer.Option(help="Republish from this process instead of queueing a Celery task.")] = False,
) -> None:
    """Re-tag papers tagged by older adapter versions, newest first, at a bounded rate."""
    settings = get_settings()
    if wait:
        from topictag.trainer.service import retag_older_papers

        typer.echo(f"republished {retag_older_papers(settings, limit)} papers for re-tagging")
        return
    from topictag.trainer.celery_app import RETAG

    Parts(settings).task_client.send_task(RETAG, kwargs={"limit": limit})
    typer.echo("queued re-tag job")


@app.command()
def reindex(
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
) -> None:
    """Build topic clusters and search embeddings for papers tagged before indexing existed."""
    from topictag.topics.index import TopicIndex

    with configured_store() as store:
        index = TopicIndex(store, get_settings().topics.cluster_threshold)
        done, last = 0, ""
        while batch := store.papers.tagged_after(last, batch_size):
            index.add(batch)
            done, last = done + len(batch), batch[-1][0].arxiv_id
    typer.echo(f"indexed {done} papers")
