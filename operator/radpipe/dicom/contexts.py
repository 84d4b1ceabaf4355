"""Presentation contexts radpipe proposes: which SOP classes and transfer syntaxes it takes.

A C-GET SCU may propose at most 128 presentation contexts in one association, and every
storage SOP class it wants to receive must be among them. Image classes get two contexts
(uncompressed, and the common compressed syntaxes) so the PACS can send stored JPEG/JPEG
2000 data as it is instead of transcoding it.
"""

from __future__ import annotations

import pydicom.uid as sc
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext

#: Service classes, by UID (pynetdicom's sop_class names are invisible to type checkers).
VERIFICATION = UID("1.2.840.10008.1.1")
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
STUDY_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")

UNCOMPRESSED: list[str] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
COMPRESSED: list[str] = [
    JPEGLosslessSV1,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEG2000,
    JPEGLSNearLossless,
]

#: Image storage SOP classes radiology departments send (uncompressed + compressed contexts).
IMAGE_CLASSES: tuple[UID, ...] = (
    sc.CTImageStorage,
    sc.EnhancedCTImageStorage,
    sc.LegacyConvertedEnhancedCTImageStorage,
    sc.MRImageStorage,
    sc.EnhancedMRImageStorage,
    sc.EnhancedMRColorImageStorage,
    sc.LegacyConvertedEnhancedMRImageStorage,
    sc.PositronEmissionTomographyImageStorage,
    sc.EnhancedPETImageStorage,
    sc.LegacyConvertedEnhancedPETImageStorage,
    sc.NuclearMedicineImageStorage,
    sc.UltrasoundImageStorage,
    sc.UltrasoundMultiFrameImageStorage,
    sc.SecondaryCaptureImageStorage,
    sc.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    sc.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    sc.MultiFrameTrueColorSecondaryCaptureImageStorage,
    sc.MultiFrameSingleBitSecondaryCaptureImageStorage,
    sc.ComputedRadiographyImageStorage,
    sc.DigitalXRayImageStorageForPresentation,
    sc.DigitalXRayImageStorageForProcessing,
    sc.DigitalMammographyXRayImageStorageForPresentation,
    sc.XRayAngiographicImageStorage,
    sc.EnhancedXAImageStorage,
    sc.XRayRadiofluoroscopicImageStorage,
    sc.BreastTomosynthesisImageStorage,
    sc.RTImageStorage,
    sc.RTDoseStorage,
    sc.SegmentationStorage,
    sc.ParametricMapStorage,
    sc.VLPhotographicImageStorage,
    sc.EnhancedUSVolumeStorage,
)

#: Non-image storage SOP classes (structured reports, presentation states, PDF, RT).
OTHER_CLASSES: tuple[UID, ...] = (
    sc.RTStructureSetStorage,
    sc.RTPlanStorage,
    sc.SpatialRegistrationStorage,
    sc.DeformableSpatialRegistrationStorage,
    sc.GrayscaleSoftcopyPresentationStateStorage,
    sc.ColorSoftcopyPresentationStateStorage,
    sc.BasicTextSRStorage,
    sc.EnhancedSRStorage,
    sc.ComprehensiveSRStorage,
    sc.Comprehensive3DSRStorage,
    sc.KeyObjectSelectionDocumentStorage,
    sc.XRayRadiationDoseSRStorage,
    sc.EncapsulatedPDFStorage,
    sc.RawDataStorage,
    sc.MRSpectroscopyStorage,
)


def retrieve_storage_contexts() -> list[PresentationContext]:
    """Storage contexts proposed with a C-GET (SCP role), 127 or fewer."""
    contexts = [build_context(uid, UNCOMPRESSED) for uid in IMAGE_CLASSES]
    contexts += [build_context(uid, COMPRESSED) for uid in IMAGE_CLASSES]
    contexts += [build_context(uid, UNCOMPRESSED) for uid in OTHER_CLASSES]
    assert len(contexts) <= 127, "C-GET leaves room for at most 127 storage contexts"
    return contexts


def storage_classes() -> tuple[UID, ...]:
    """Every storage SOP class radpipe retrieves."""
    return IMAGE_CLASSES + OTHER_CLASSES
