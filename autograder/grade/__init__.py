"""Grading a batch of submissions in isolation (see batch.py for the flow)."""

from .batch import BatchSummary, grade_batch
from .isolate import Limits

__all__ = ["BatchSummary", "Limits", "grade_batch"]
