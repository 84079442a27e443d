"""The ``trialpacs`` command: thin adapters over the domain packages."""
