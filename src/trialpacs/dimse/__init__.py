"""DIMSE (classic DICOM networking): the archive as a DICOM node for PACS and modalities.

``server.start(archive)`` runs the listener; the other modules hold the
domain logic the thin event handlers in :mod:`trialpacs.dimse.handlers` call.
"""
