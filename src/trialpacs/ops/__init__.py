"""Operations: metrics, readiness, structured logs, backup and restore (docs/operations.md)."""
