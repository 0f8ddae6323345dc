"""The attributes DICOM PS3.15 Annex E requires removing or replacing, as data.

Source: DICOM PS3.15 (Security and System Management Profiles), Annex E "Attribute
Confidentiality Profiles", Table E.1-1 "Application Level Confidentiality Profile Attributes",
column "Basic Prof." (the Basic Application Level Confidentiality Profile, §E.2). Action codes
as in Table E.1-1:

    X  remove
    Z  replace with a zero-length value (or a dummy consistent with the VR)
    D  replace with a non-zero-length dummy value consistent with the VR
    U  replace with a non-zero-length UID, consistent within the set of instances

Where Table E.1-1 gives a choice (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) this table takes the action
Ferry's de-identifier performs: X for attributes a receiver does not need (type 3), Z for those
an IOD requires to be present (type 2), U for UIDs. None of the Profile's options (Retain
Longitudinal Temporal Information, Retain Patient Characteristics, Retain Device Identity,
Retain UIDs, Retain Safe Private, Clean Descriptors, Clean Pixel Data...) is applied.

This is the part of Table E.1-1 that occurs in the image and report IODs cases carry (the full
table has some 600 rows, many of them for waveforms, RT and structured-report content). Beyond
the rows listed here the checker and the de-identifier also treat: every private attribute
(§E.3.10 is not applied: private attributes are removed), every other PN (person name) value
anywhere in the dataset, overlay data and comments (groups 60xx) and curve data (groups 50xx).
``BurnedInAnnotation`` and ``PatientIdentityRemoved`` are checked separately (§E.1.1: the
de-identifier sets PatientIdentityRemoved to YES; burned-in text needs the Clean Pixel Data
option, which header edits cannot provide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydicom.datadict import tag_for_keyword

Action = Literal["X", "Z", "D", "U"]

# (keyword, action, category): category groups findings for the operator.
_ROWS: tuple[tuple[str, Action, str], ...] = (
    # patient
    ("PatientName", "Z", "patient name"),
    ("PatientID", "Z", "patient ID"),
    ("IssuerOfPatientID", "X", "patient ID"),
    ("OtherPatientIDs", "X", "patient ID"),
    ("OtherPatientIDsSequence", "X", "patient ID"),
    ("OtherPatientNames", "X", "patient name"),
    ("PatientBirthName", "X", "patient name"),
    ("PatientMotherBirthName", "X", "patient name"),
    ("PatientBirthDate", "Z", "birth date"),
    ("PatientBirthTime", "X", "birth date"),
    ("PatientSex", "Z", "patient characteristics"),
    ("PatientAge", "X", "patient characteristics"),
    ("PatientSize", "X", "patient characteristics"),
    ("PatientWeight", "X", "patient characteristics"),
    ("EthnicGroup", "X", "patient characteristics"),
    ("PatientSexNeutered", "X", "patient characteristics"),
    ("SmokingStatus", "X", "patient characteristics"),
    ("PregnancyStatus", "X", "patient characteristics"),
    ("AdditionalPatientHistory", "X", "patient history"),
    ("PatientComments", "X", "patient history"),
    ("PatientAddress", "X", "address"),
    ("PatientTelephoneNumbers", "X", "address"),
    ("PatientTelecomInformation", "X", "address"),
    ("CountryOfResidence", "X", "address"),
    ("RegionOfResidence", "X", "address"),
    ("MilitaryRank", "X", "patient history"),
    ("BranchOfService", "X", "patient history"),
    ("Occupation", "X", "patient history"),
    ("PatientReligiousPreference", "X", "patient history"),
    ("MedicalRecordLocator", "X", "patient ID"),
    ("PatientInsurancePlanCodeSequence", "X", "patient ID"),
    ("PatientPrimaryLanguageCodeSequence", "X", "patient characteristics"),
    ("ReferencedPatientSequence", "X", "patient ID"),
    ("ReferencedPatientPhotoSequence", "X", "patient ID"),
    ("ResponsiblePerson", "X", "physicians and staff"),
    ("ResponsibleOrganization", "X", "institution"),
    ("PatientState", "X", "patient history"),
    ("AdmissionID", "X", "patient ID"),
    ("AdmittingDiagnosesDescription", "X", "patient history"),
    ("CurrentPatientLocation", "X", "address"),
    ("PatientInstitutionResidence", "X", "address"),
    # institution and equipment
    ("InstitutionName", "X", "institution"),
    ("InstitutionAddress", "X", "institution"),
    ("InstitutionCodeSequence", "X", "institution"),
    ("InstitutionalDepartmentName", "X", "institution"),
    ("StationName", "X", "institution"),
    ("DeviceSerialNumber", "X", "institution"),
    ("DetectorID", "X", "institution"),
    ("DeviceUID", "U", "UIDs"),
    ("PerformedStationAETitle", "X", "institution"),
    ("PerformedStationName", "X", "institution"),
    ("PerformedLocation", "X", "institution"),
    ("ScheduledStationAETitle", "X", "institution"),
    ("ScheduledStationName", "X", "institution"),
    # physicians and staff
    ("ReferringPhysicianName", "Z", "physicians and staff"),
    ("ReferringPhysicianAddress", "X", "physicians and staff"),
    ("ReferringPhysicianTelephoneNumbers", "X", "physicians and staff"),
    ("ReferringPhysicianIdentificationSequence", "X", "physicians and staff"),
    ("ConsultingPhysicianName", "X", "physicians and staff"),
    ("PhysiciansOfRecord", "X", "physicians and staff"),
    ("PhysiciansOfRecordIdentificationSequence", "X", "physicians and staff"),
    ("PerformingPhysicianName", "X", "physicians and staff"),
    ("PerformingPhysicianIdentificationSequence", "X", "physicians and staff"),
    ("NameOfPhysiciansReadingStudy", "X", "physicians and staff"),
    ("PhysiciansReadingStudyIdentificationSequence", "X", "physicians and staff"),
    ("OperatorsName", "X", "physicians and staff"),
    ("OperatorIdentificationSequence", "X", "physicians and staff"),
    ("RequestingPhysician", "X", "physicians and staff"),
    ("RequestingService", "X", "physicians and staff"),
    ("ScheduledPerformingPhysicianName", "X", "physicians and staff"),
    ("PersonName", "D", "physicians and staff"),
    ("VerifyingObserverName", "D", "physicians and staff"),
    ("VerifyingOrganization", "X", "institution"),
    ("AuthorObserverSequence", "X", "physicians and staff"),
    ("ContentCreatorName", "Z", "physicians and staff"),
    # orders and exam identifiers
    ("AccessionNumber", "Z", "accession number"),
    ("StudyID", "Z", "exam identifiers"),
    ("RequestedProcedureID", "X", "exam identifiers"),
    ("ScheduledProcedureStepID", "X", "exam identifiers"),
    ("PerformedProcedureStepID", "X", "exam identifiers"),
    ("PlacerOrderNumberImagingServiceRequest", "Z", "exam identifiers"),
    ("FillerOrderNumberImagingServiceRequest", "Z", "exam identifiers"),
    ("RequestAttributesSequence", "X", "exam identifiers"),
    ("ReferencedStudySequence", "X", "exam identifiers"),
    ("ReferencedPerformedProcedureStepSequence", "X", "exam identifiers"),
    # descriptions and free text
    ("StudyDescription", "X", "descriptions"),
    ("SeriesDescription", "X", "descriptions"),
    ("ProtocolName", "X", "descriptions"),
    ("RequestedProcedureDescription", "X", "descriptions"),
    ("PerformedProcedureStepDescription", "X", "descriptions"),
    ("CommentsOnThePerformedProcedureStep", "X", "descriptions"),
    ("RequestedProcedureComments", "X", "descriptions"),
    ("RequestedContrastAgent", "X", "descriptions"),
    ("IdentifyingComments", "X", "descriptions"),
    ("ImageComments", "X", "descriptions"),
    ("StudyComments", "X", "descriptions"),
    ("AcquisitionComments", "X", "descriptions"),
    ("AcquisitionDeviceProcessingDescription", "X", "descriptions"),
    ("DerivationDescription", "X", "descriptions"),
    ("OriginalAttributesSequence", "X", "descriptions"),
    ("ContentSequence", "X", "descriptions"),
    # dates and times
    ("StudyDate", "Z", "dates and times"),
    ("StudyTime", "Z", "dates and times"),
    ("SeriesDate", "X", "dates and times"),
    ("SeriesTime", "X", "dates and times"),
    ("AcquisitionDate", "X", "dates and times"),
    ("AcquisitionTime", "X", "dates and times"),
    ("AcquisitionDateTime", "X", "dates and times"),
    ("ContentDate", "Z", "dates and times"),
    ("ContentTime", "Z", "dates and times"),
    ("InstanceCreationDate", "X", "dates and times"),
    ("InstanceCreationTime", "X", "dates and times"),
    ("OverlayDate", "X", "dates and times"),
    ("OverlayTime", "X", "dates and times"),
    ("CurveDate", "X", "dates and times"),
    ("CurveTime", "X", "dates and times"),
    ("PerformedProcedureStepStartDate", "X", "dates and times"),
    ("PerformedProcedureStepStartTime", "X", "dates and times"),
    ("PerformedProcedureStepEndDate", "X", "dates and times"),
    ("PerformedProcedureStepEndTime", "X", "dates and times"),
    ("DateOfLastCalibration", "X", "dates and times"),
    ("TimeOfLastCalibration", "X", "dates and times"),
    ("TimezoneOffsetFromUTC", "X", "dates and times"),
    ("VerificationDateTime", "D", "dates and times"),
    # UIDs
    ("StudyInstanceUID", "U", "UIDs"),
    ("SeriesInstanceUID", "U", "UIDs"),
    ("SOPInstanceUID", "U", "UIDs"),
    ("MediaStorageSOPInstanceUID", "U", "UIDs"),
    ("ReferencedSOPInstanceUID", "U", "UIDs"),
    ("FrameOfReferenceUID", "U", "UIDs"),
    ("SynchronizationFrameOfReferenceUID", "U", "UIDs"),
    ("ReferencedFrameOfReferenceUID", "U", "UIDs"),
    ("InstanceCreatorUID", "U", "UIDs"),
    ("StorageMediaFileSetUID", "U", "UIDs"),
    ("FailedSOPInstanceUIDList", "U", "UIDs"),
    ("ConcatenationUID", "U", "UIDs"),
    ("DimensionOrganizationUID", "U", "UIDs"),
    ("IrradiationEventUID", "U", "UIDs"),
    ("UID", "U", "UIDs"),
)


@dataclass(frozen=True)
class ProfileAttribute:
    tag: int
    keyword: str
    action: Action
    category: str

    @property
    def tag_text(self) -> str:
        return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:  # a keyword pydicom's dictionary does not know: a typo here
        raise RuntimeError(f"backend/dicom/profile.py: unknown DICOM keyword {keyword}")
    return tag


def _build() -> dict[int, ProfileAttribute]:
    table: dict[int, ProfileAttribute] = {}
    for keyword, action, category in _ROWS:
        tag = _tag(keyword)
        table[tag] = ProfileAttribute(tag, keyword, action, category)
    return table


ATTRIBUTES: dict[int, ProfileAttribute] = _build()

BURNED_IN = _tag("BurnedInAnnotation")
IDENTITY_REMOVED = _tag("PatientIdentityRemoved")
DEIDENTIFICATION_METHOD = _tag("DeidentificationMethod")


def is_overlay_or_curve(tag: int) -> bool:
    """Overlay data/comments (60xx,3000)/(60xx,4000) and every curve element (50xx,xxxx): X."""
    group, element = tag >> 16, tag & 0xFFFF
    if 0x6000 <= group <= 0x601E and group % 2 == 0:
        return element in (0x3000, 0x4000)
    return 0x5000 <= group <= 0x501E and group % 2 == 0
