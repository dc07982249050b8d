"""The composition root: every service and command builds its parts here, from one
immutable settings tree, so each process is wired the same way. A variant (a test, the
demo) passes a changed tree, ``settings.model_copy(update=...)``; the cached global
settings are never touched.

``Parts`` builds each part on first use and closes what it built, newest first::

    with Parts(settings) as parts:
        TrainingPipeline(settings, parts.store, parts.registry, parts.evaluation_engine)
"""

from __future__ import annotations

from contextlib import ExitStack
from functools import cached_property
from typing import TYPE_CHECKING

from topictag.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

    from topictag.adapters.events import ModelEventPublisher
    from topictag.adapters.registry import AdapterRegistry
    from topictag.store import Store
    from topictag.student.engine import StudentEngine
    from topictag.teacher import Teacher


class Parts:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._closing = ExitStack()

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._closing.close()

    @cached_property
    def store(self) -> Store:
        """The store, its schema upgraded to this release's."""
        from topictag.store import open_store

        store = open_store(self.settings.store_url, echo=self.settings.store.echo)
        self._closing.callback(store.close)
        return store

    @cached_property
    def model_events(self) -> ModelEventPublisher:
        """Announces promotions and rollbacks on the models topic."""
        from topictag.adapters.events import ModelEventPublisher

        events = ModelEventPublisher(self.settings.kafka)
        self._closing.callback(events.close)
        return events

    @cached_property
    def registry(self) -> AdapterRegistry:
        """The adapter registry, announcing what it changes."""
        from topictag.adapters.registry import AdapterRegistry

        return AdapterRegistry(self.store, self.model_events)

    @cached_property
    def student_engine(self) -> StudentEngine:
        """The student on the configured engine (it starts here: seconds to minutes)."""
        from topictag.student.factory import create_engine

        engine = create_engine(self.settings)
        self._closing.callback(engine.close)
        return engine

    def evaluation_engine(self) -> StudentEngine:
        """A new engine for scoring adapters (``trainer.eval_engine``); the caller closes it."""
        from topictag.student.factory import create_engine

        student = self.settings.student.model_copy(update={"engine": self.settings.trainer.eval_engine})
        return create_engine(self.settings.model_copy(update={"student": student}))

    @cached_property
    def teacher(self) -> Teacher:
        from topictag.teacher import create_teacher

        teacher = create_teacher(self.settings)
        self._closing.callback(teacher.close)
        return teacher

    @cached_property
    def task_client(self) -> Celery:
        """The Celery app that queues trainings and re-tags."""
        from topictag.trainer.celery_app import create_celery

        return create_celery(self.settings)
