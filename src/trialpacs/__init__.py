"""trialpacs: a self-hosted imaging gateway for clinical trials."""

__version__ = "0.1.0"
