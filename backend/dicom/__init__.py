"""DICOM awareness for cases: read headers, summarise studies, check and de-identify.

``reader`` reads headers only (a local folder, a zip, a remote folder over SFTP), ``summary``
turns headers into studies and series, ``profile`` is the DICOM PS3.15 Annex E attribute table,
``checker`` reports what a file still carries that the Basic Application Level Confidentiality
Profile requires removing or replacing, ``deidentify`` writes a de-identified copy straight
into a zip, and ``mapping`` keeps the pseudonym -> original links in the vault. Nothing here
imports Textual, Rich or the TUI (docs/cases.md, "DICOM").
"""
