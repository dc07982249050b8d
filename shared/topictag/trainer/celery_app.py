"""The trainer's Celery app as its clients see it: the broker, the queue, the beat
schedule and the task names. The worker registers the tasks' bodies (trainer/tasks.py);
the gateway and the CLI only queue them by name.

Broker: Redis when TOPICTAG_TRAINER_CELERY_BROKER is set (production), else Kombu's
filesystem transport under the data directory (one machine, no server needed).
"""

from __future__ import annotations

import logging
import uuid

from celery import Celery

from topictag.settings import Settings, get_settings

log = logging.getLogger(__name__)

TRAIN = "topictag.train"
MAYBE_TRAIN = "topictag.maybe_train"
RETAG = "topictag.retag"


def broker_config(settings: Settings) -> dict:
    trainer = settings.trainer
    if trainer.celery_broker:
        return {
            "broker_url": trainer.celery_broker,
            # Redis redelivers unacknowledged tasks after this; a training must finish first.
            "broker_transport_options": {"visibility_timeout": trainer.visibility_timeout_s},
        }
    root = (settings.paths.data_dir / "celery").resolve()
    for sub in ("queue", "processed", "control"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": str(root / "queue"),
            "data_folder_out": str(root / "queue"),
            "processed_folder": str(root / "processed"),
            "store_processed": False,
            "control_folder": str(root / "control"),
        },
    }


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    settings.paths.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule there
    app = Celery("topictag-trainer")
    app.conf.update(
        broker_config(settings),
        task_acks_late=True,  # a worker that dies mid-training leaves the task to be redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # outcomes live in the store (training_runs), not a result backend
        task_default_queue="topictag-trainer",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,  # keep setup_logging's format (TOPICTAG_LOG_FORMAT=json included)
        beat_schedule={
            "train-when-labels-accumulate": {"task": MAYBE_TRAIN, "schedule": settings.trainer.interval_s},
        },
        beat_schedule_filename=str((settings.paths.data_dir / "celerybeat-schedule").resolve()),
    )
    return app


def request_training(app: Celery) -> str:
    """Queue a training now; returns its request id."""
    request_id = f"manual-{uuid.uuid4().hex[:12]}"
    app.send_task(TRAIN, kwargs={"request_id": request_id})
    return request_id
