"""Patient records and videos next to the images (issue 12).

Reports (PDF, plain text, HL7 v2 ORU, FHIR R4 bundles) and videos (MP4/MOV)
enter a trial like images do: they are wrapped as identified DICOM objects
(Encapsulated PDF, Basic Text SR, video) at intake, so quarantine, the
pipeline, publication, DICOMweb, access control and audit treat them as any
other instance. The pipeline's series job calls :func:`deidentify_instance`,
which de-identifies the wrapper's header with the trial's engine (same
pseudonym, same date shift as the subject's images) and the payload with the
format's own cleaner. See docs/records.md.
"""

from trialpacs.records.formats import RecordFormat, detect_format
from trialpacs.records.identity import PatientIdentity

__all__ = ["PatientIdentity", "RecordFormat", "detect_format"]
