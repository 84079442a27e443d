"""From quarantine to publication: series jobs, their executors, and status.

The job table in the index is the source of truth on both executors; the
embedded pool polls it, Celery only carries job numbers to workers that claim
the same rows. See docs/pipeline.md.
"""
