"""The HTTP adapter: DICOMweb, auth endpoints and (later) the portal."""
