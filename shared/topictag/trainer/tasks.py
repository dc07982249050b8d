"""The trainer's tasks: a beat schedule that trains when enough new teacher labels
arrived, on-demand training, and re-tagging after a promotion."""

from __future__ import annotations

from typing import Literal

from celery import Celery

from topictag.settings import Settings
from topictag.trainer.celery_app import MAYBE_TRAIN, RETAG, TRAIN, create_celery
from topictag.trainer.pipeline import new_label_count
from topictag.trainer.service import retag_older_papers, training_pipeline

# One task at a time in the worker's own process: a training holds the CPU or GPU anyway.
WORKER_ARGV = ["worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO",
               "--without-mingle", "--without-gossip", "--without-heartbeat", "-Q", "topictag-trainer"]


def run_trainer(settings: Settings, role: Literal["worker", "beat"], *, with_beat: bool = False) -> None:
    """Run the trainer's Celery worker (``with_beat``: the beat schedule in the same process)
    or the beat schedule alone (one per deployment)."""
    app = worker_app(settings)
    if role == "worker":
        app.worker_main(WORKER_ARGV + (["--beat"] if with_beat else []))
    else:
        app.start(["beat", "--loglevel=INFO"])


def worker_app(settings: Settings) -> Celery:
    """The Celery app with the tasks' bodies, for the worker that runs them."""
    app = create_celery(settings)

    @app.task(name=TRAIN)
    def train(request_id: str) -> dict:
        with training_pipeline(settings) as pipeline:
            return pipeline.run(request_id).__dict__

    @app.task(name=MAYBE_TRAIN)
    def maybe_train() -> dict:
        with training_pipeline(settings) as pipeline:
            count, newest = new_label_count(pipeline.store)
            if count < settings.trainer.min_new_labels:
                return {"status": "waiting", "new_labels": count, "needed": settings.trainer.min_new_labels}
            # Named after the labels it covers: a repeated beat tick trains once.
            return pipeline.run(f"labels-up-to-{newest}").__dict__

    @app.task(name=RETAG)
    def retag(limit: int | None = None) -> dict:
        return {"republished": retag_older_papers(settings, limit)}

    return app
