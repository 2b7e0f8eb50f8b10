"""The class report (OUT/report/index.html with matplotlib plots) and per-student feedback pages
(OUT/feedback/<key>.html), both derived from a graded batch folder's records."""

from .build import BatchStats, batch_stats, write_feedback_pages, write_report

__all__ = ["BatchStats", "batch_stats", "write_feedback_pages", "write_report"]
