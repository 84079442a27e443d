"""Anatomy quality control: is this series the body part the trial expects?

Two layers and their fusion: the metadata layer (``descriptors``, ``geometry``)
reads header text and geometry, normalised to SNOMED CT codes (``anatomy``);
the image layer (``features``, ``outliers``) scores how far a series' pixels
sit from the rest of the trial's batch. ``fusion`` turns both into a verdict
with reasons; ``hook`` runs it in the pipeline, ``queue`` lets a data manager
approve or reject what was held, ``scan`` runs it on a folder.
"""
