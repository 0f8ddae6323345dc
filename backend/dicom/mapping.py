"""The pseudonym -> original links of de-identified studies, kept encrypted in the vault.

One vault entry per de-identified study, named ``dicom-map/<pseudonymous StudyInstanceUID>``
(the name holds no identifying data: ``ferry vault list`` shows names), whose value is the JSON
of a :class:`backend.dicom.deidentify.StudyMapping`: the original StudyInstanceUID, patient ID,
name, accession number and study date, the pseudonyms, and the case id and site once the zip is
sent. The vault (backend/vault.py: scrypt + AES-256-GCM, atomic 0600 writes) is what protects
it; nothing identifying is written anywhere else. Results that come back keyed by the case id
or the pseudonymous study UID are linked to the original patient with :meth:`MappingStore.find`.
"""

from __future__ import annotations

import json

from backend.dicom.deidentify import StudyMapping
from backend.errors import VaultError
from backend.vault import Vault

PREFIX = "dicom-map/"


class MappingStore:
    """Mappings in an unlocked :class:`backend.vault.Vault`; :meth:`save` writes the vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def add(self, mapping: StudyMapping, *, case_id: str = "", site: str = "") -> None:
        if not mapping.pseudo_study_uid:
            raise VaultError("a study mapping needs its pseudonymous StudyInstanceUID")
        if case_id:
            mapping.case_id = case_id
        if site:
            mapping.site = site
        self.vault.set(PREFIX + mapping.pseudo_study_uid, json.dumps(mapping.to_json()))

    def drop_case(self, site: str, case_id: str) -> int:
        """Forget the mappings of an earlier attempt to send this case (it was de-identified
        again, with new pseudonyms); returns how many were removed."""
        gone = 0
        for m in self.all():
            if m.site == site and m.case_id == case_id and case_id:
                gone += self.vault.delete(PREFIX + m.pseudo_study_uid)
        return gone

    def for_case(self, site: str, case_id: str) -> list[StudyMapping]:
        return [m for m in self.all() if m.site == site and m.case_id == case_id and case_id]

    def save(self) -> None:
        self.vault.save()

    def get(self, pseudo_study_uid: str) -> StudyMapping | None:
        raw = self.vault.get(PREFIX + pseudo_study_uid)
        return None if raw is None else _load(raw)

    def all(self) -> list[StudyMapping]:
        out = []
        for name in self.vault.names():
            if name.startswith(PREFIX):
                raw = self.vault.get(name)
                if raw is not None:
                    out.append(_load(raw))
        return sorted(out, key=lambda m: m.created_at)

    def find(self, key: str) -> list[StudyMapping]:
        """Mappings whose case id, pseudonymous study UID or pseudonymous patient ID is ``key``
        (what a provider's result is keyed by)."""
        key = key.strip()
        return [m for m in self.all()
                if key and key in (m.case_id, m.pseudo_study_uid, m.pseudo_patient_id)]


def _load(raw: str) -> StudyMapping:
    try:
        return StudyMapping.from_json(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise VaultError(f"a DICOM mapping in the vault is damaged: {exc}") from None
