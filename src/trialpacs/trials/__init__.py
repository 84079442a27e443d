"""Trials, sites, regions and storage backends: who sends what, and where it may live."""
