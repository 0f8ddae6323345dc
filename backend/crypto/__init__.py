"""Encryption at rest: Ferry's one container format (``container``) and symmetric key files
(``keys``). See docs/format.md for the wire format."""
