"""Celery workers: the app, its queues, and one thin task per command kind."""

from workers.app import celery, enqueue, enqueuer

__all__ = ["celery", "enqueue", "enqueuer"]
