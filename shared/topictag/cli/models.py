"""The student: preparing it, scoring it, distilling and training adapters, the registry."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from topictag.bootstrap import Parts
from topictag.cli.app import app, configured_registry, configured_store, emit
from topictag.logs import setup_logging
from topictag.settings import get_settings


@app.command("prepare-model")
def prepare_model() -> None:
    """Prepare the student model once (dequantise the bundled SmolLM2 into the cache)."""
    from topictag.student.model_files import student_model_path

    setup_logging("prepare")
    started = time.monotonic()
    path = student_model_path(get_settings())
    typer.echo(f"student model at {path} ({time.monotonic() - started:.1f} s)")


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Option(help="Labels file with abstract and teacher_topic columns.")],
    out: Annotated[Optional[Path], typer.Option(help="Write the scores here as JSON.")] = None,
    adapter: Annotated[Optional[Path], typer.Option(help="LoRA adapter folder; the base model if omitted.")] = None,
    predictions: Annotated[Optional[Path], typer.Option(help="Also write each prediction to this CSV.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N rows.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
) -> None:
    """Tag every abstract in DATA with the student and score it against the teacher."""
    from topictag.evaluation import readability, score, tag_frame
    from topictag.files import read_labels
    from topictag.student.engine import Adapter

    setup_logging("eval", level="WARNING")
    labels = read_labels(data)
    if limit:
        labels = labels.head(limit)
    with Parts(get_settings()) as parts:
        engine = parts.student_engine
        if adapter:
            engine.use_adapter(Adapter(adapter.name, adapter, lora_id=1))
        started = time.monotonic()
        topics = tag_frame(engine, labels, batch_size)
        elapsed = time.monotonic() - started
    titles = labels["title"].astype(str).tolist() if "title" in labels.columns else None
    result = score(topics, labels["teacher_topic"].tolist()) | readability(topics, titles) | {
        "papers_per_s": round(len(labels) / elapsed, 2)}
    if predictions:
        labels.assign(prediction=topics).to_csv(predictions, index=False)
    emit(result, out)


@app.command()
def score(
    data: Annotated[Path, typer.Option(help="CSV, JSONL or Parquet file with predictions and references.")],
    pred_column: Annotated[str, typer.Option(help="Column holding the predictions.")],
    ref_column: Annotated[str, typer.Option(help="Column holding the teacher's topics.")] = "teacher_topic",
    out: Annotated[Optional[Path], typer.Option(help="Write the scores here as JSON.")] = None,
) -> None:
    """Score predictions already in a file against the teacher (no model involved)."""
    from topictag.evaluation import score as score_topics
    from topictag.files import read_table

    frame = read_table(data)
    for column in (pred_column, ref_column):
        if column not in frame.columns:
            raise typer.BadParameter(f"{data.name} has no column {column!r}; it has {', '.join(frame.columns)}")
    emit(score_topics(frame[pred_column].fillna("").astype(str).tolist(), frame[ref_column].astype(str).tolist()), out)


models_app = typer.Typer(help="Adapter versions: list, promote, roll back.", no_args_is_help=True)


app.add_typer(models_app, name="models")


@app.command()
def train(
    wait: Annotated[bool, typer.Option(help="Train in this process instead of queueing a Celery task.")] = False,
) -> None:
    """Train an adapter from the accumulated teacher labels now."""
    settings = get_settings()
    if wait:
        from topictag.trainer.service import training_pipeline

        setup_logging("train")
        with training_pipeline(settings) as pipeline:
            outcome = pipeline.run(f"manual-{time.time_ns()}")
        typer.echo(json.dumps(outcome.__dict__))
        return
    from topictag.trainer.celery_app import request_training

    typer.echo(f"queued training {request_training(Parts(settings).task_client)}")


@models_app.command("list")
def models_list() -> None:
    """Adapter versions with status and scores."""
    from rich.console import Console
    from rich.table import Table

    with configured_store() as store:
        rows = store.adapters.list()
    table = Table("version", "status", "ROUGE-1 F", "BLEU-3", "created", "promoted", "reason")
    for row in rows:
        m = json.loads(row.metrics)
        table.add_row(row.version, row.status, str(m.get("rouge1_f", "")), str(m.get("bleu3", "")),
                      f"{row.created_at:%Y-%m-%d %H:%M}", f"{row.promoted_at:%Y-%m-%d %H:%M}" if row.promoted_at else "",
                      row.reason)
    Console().print(table)


@models_app.command("promote")
def models_promote(version: Annotated[str, typer.Argument(help="Version to put in production, e.g. v3.")]) -> None:
    """Put VERSION in production (taggers switch within seconds)."""
    from topictag.adapters.registry import AdapterRefused

    try:
        with configured_registry() as registry:
            registry.promote(version, "promoted by hand", get_settings().student.model_name)
    except AdapterRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{version} is in production")


@models_app.command("rollback")
def models_rollback() -> None:
    """Retire the production adapter and restore the one before it (or the base model)."""
    from topictag.adapters.registry import AdapterRefused

    try:
        with configured_registry() as registry:
            restored = registry.rollback()
    except AdapterRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{restored.version if restored else 'the base model'} is in production")


@app.command()
def distill(
    labels: Annotated[Path, typer.Option(help="Teacher labels: abstract and teacher_topic (or topic) columns.")],
    out: Annotated[Path, typer.Option(help="Folder to write the adapter and its metrics.json to (must not exist).")],
    eval: Annotated[Optional[Path], typer.Option(help="Labels to score on. Omitted: the deterministic held-out split of LABELS, never trained on.")] = None,
    epochs: Annotated[Optional[float], typer.Option(min=0.01)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(min=0)] = None,
    lora_rank: Annotated[Optional[int], typer.Option(min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1)] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Train on the first N training rows only.")] = None,
) -> None:
    """Train a LoRA adapter for the student from a labels file and score it."""
    from topictag.distill.dataset import split_labels
    from topictag.distill.train import distill as run_distill
    from topictag.files import read_labels

    setup_logging("distill", level="WARNING")
    settings = get_settings()
    overrides = {k: v for k, v in {"epochs": epochs, "learning_rate": learning_rate, "lora_rank": lora_rank,
                                   "batch_size": batch_size, "max_steps": max_steps}.items() if v is not None}
    if lora_rank is not None:
        overrides["lora_alpha"] = 2 * lora_rank
    settings = settings.model_copy(update={"distill": settings.distill.model_copy(update=overrides)})
    frame = read_labels(labels)
    if eval is not None:
        train_rows, eval_rows = frame, read_labels(eval)
    else:
        train_rows, eval_rows = split_labels(frame, settings.trainer.eval_fraction)
    if limit:
        train_rows = train_rows.head(limit)
    try:
        result = run_distill(settings, train_rows, out, eval=eval_rows)
    except FileExistsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from None
    emit({"adapter": str(result.path), "n_train": result.n_train, "n_eval": result.n_eval,
           "train_seconds": result.train_seconds, "samples_per_s": result.samples_per_s} | result.metrics, None)
