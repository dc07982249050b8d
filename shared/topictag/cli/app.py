"""The root ``topictag`` command and what its command groups share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from topictag.bootstrap import Parts
from topictag.settings import get_settings

if TYPE_CHECKING:
    from topictag.adapters.registry import AdapterRegistry
    from topictag.store import Store


app = typer.Typer(
    help="Streaming topic tagging of research papers with a self-distilling student LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def emit(result: dict, out: Path | None) -> None:
    text = json.dumps(result)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)


@contextmanager
def configured_store() -> Iterator[Store]:
    """The configured store, schema upgraded, closed when the command ends."""
    with Parts(get_settings()) as parts:
        yield parts.store


@contextmanager
def configured_registry() -> Iterator[AdapterRegistry]:
    """The adapter registry, announcing its changes on the models topic."""
    with Parts(get_settings()) as parts:
        yield parts.registry
