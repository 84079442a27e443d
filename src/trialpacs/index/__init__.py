"""The index: what is stored, where, and every attribute QIDO-RS matches or returns."""
