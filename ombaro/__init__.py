"""OMBARO Ops: the domain of the operations engine (no Flask, no Celery here)."""
