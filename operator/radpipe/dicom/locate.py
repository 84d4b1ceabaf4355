"""Find the one study a job means, from its accession number or StudyInstanceUID.

An accession number should name one study, but PACS data is not always clean: the same
accession can be on two studies (a re-scan, a merge gone wrong, an MR and a CT ordered
together). Then the app's modality decides; if it cannot, the job fails listing the
candidates so a person can pick one by StudyInstanceUID.
"""

from __future__ import annotations

from radpipe.dicom.errors import AmbiguousStudy, StudyNotFound
from radpipe.dicom.models import StudyMatch
from radpipe.dicom.retrieve import PacsClient
from radpipe.logs import accession_hash


def locate_study(
    client: PacsClient,
    *,
    accession: str | None = None,
    study_uid: str | None = None,
    modality: str | None = None,
) -> StudyMatch:
    """The study to fetch; raises :class:`StudyNotFound` or :class:`AmbiguousStudy`.

    Messages name the accession only by its hash (they end up in logs).
    """
    node = client.node
    if study_uid:
        found = client.find_studies(study_uid=study_uid)
        found = [s for s in found if s.study_instance_uid == study_uid]
        if not found:
            raise StudyNotFound(
                f"no study with StudyInstanceUID {study_uid} on PACS {node.describe()}",
                hint="check the UID, or that the study has arrived at this PACS node",
            )
        return found[0]
    if not accession:
        raise StudyNotFound("neither an accession number nor a StudyInstanceUID was given")
    tag = accession_hash(accession)
    found = [
        s for s in client.find_studies(accession=accession) if s.accession_number in ("", accession)
    ]
    if not found:
        raise StudyNotFound(
            f"no study with the job's accession number ({tag}) on PACS {node.describe()}",
            hint="check the accession number and that the study has arrived at the PACS; "
            f"`radpipe pacs find --accession ACCESSION --node {node.name}` searches by hand",
        )
    if len(found) == 1:
        only = found[0]
        if modality and only.modalities and modality not in only.modalities:
            raise StudyNotFound(
                f"the study with the job's accession number ({tag}) on PACS {node.name} is "
                f"{'/'.join(only.modalities)}, but the app needs {modality}: {only.summary()}",
                hint="check the accession number and the app chosen for it",
            )
        return only
    if modality:
        fitting = [s for s in found if modality in s.modalities]
        if len(fitting) == 1:
            return fitting[0]
    listing = "; ".join(s.summary() for s in found)
    raise AmbiguousStudy(
        f"{len(found)} studies on PACS {node.name} carry the job's accession number ({tag})"
        f"{f' and modality {modality}' if modality else ''}: {listing}",
        hint="run the job again naming one study by its StudyInstanceUID "
        "(--study-uid / spec.studyInstanceUID), and have the PACS team fix the duplicate",
    )
