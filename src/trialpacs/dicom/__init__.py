"""DICOM parsing with limits, UID rules, DICOM JSON, frames and rendering."""
