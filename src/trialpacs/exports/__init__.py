"""Research exports: cohorts over the de-identified archive and dataset packages."""
