"""Intake of instances: STOW-RS, DIMSE C-STORE and file/zip import share one store path."""
