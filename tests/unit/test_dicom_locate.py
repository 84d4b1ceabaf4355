"""Choosing the study a job means (accession → study), and node lookup by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from radpipe.config import PacsNodeConfig, Settings
from radpipe.dicom.errors import AmbiguousStudy, NodeConfigError, StudyNotFound
from radpipe.dicom.locate import locate_study
from radpipe.dicom.models import StudyMatch
from radpipe.dicom.nodes import PacsNode, resolve_node
from radpipe.logs import accession_hash


class Catalog:
    def __init__(self, *studies: StudyMatch) -> None:
        self.node = PacsNode("pacs1", PacsNodeConfig())
        self.studies = list(studies)

    def find_studies(self, *, accession: str | None = None, study_uid: str | None = None):  # type: ignore[no-untyped-def]
        return [
            s
            for s in self.studies
            if (accession is None or s.accession_number == accession)
            and (study_uid is None or s.study_instance_uid == study_uid)
        ]


MR = StudyMatch("1.2.3", "A77", "20240101", modalities=("MR",), num_instances=10)
MR2 = StudyMatch("1.2.4", "A77", "20240301", modalities=("MR",), num_instances=12)
CT = StudyMatch("1.2.5", "A77", "20240101", modalities=("CT",), num_instances=40)


def test_unknown_accession_names_node_not_accession() -> None:
    with pytest.raises(StudyNotFound) as info:
        locate_study(Catalog(MR), accession="NOPE", modality="MR")  # type: ignore[arg-type]
    text = str(info.value)
    assert "pacs1" in text and accession_hash("NOPE") in text and "NOPE" not in text
    assert not info.value.retryable


def test_duplicate_accession_is_resolved_by_modality() -> None:
    chosen = locate_study(Catalog(MR, CT), accession="A77", modality="CT")  # type: ignore[arg-type]
    assert chosen is CT


def test_duplicate_accession_same_modality_lists_both() -> None:
    with pytest.raises(AmbiguousStudy) as info:
        locate_study(Catalog(MR, MR2, CT), accession="A77", modality="MR")  # type: ignore[arg-type]
    text = str(info.value)
    assert "1.2.3" in text and "1.2.4" in text and "StudyInstanceUID" in text


def test_single_study_of_the_wrong_modality_fails_clearly() -> None:
    with pytest.raises(StudyNotFound, match="is CT, but the app needs MR"):
        locate_study(Catalog(CT), accession="A77", modality="MR")  # type: ignore[arg-type]


def test_study_uid_skips_the_accession() -> None:
    assert locate_study(Catalog(MR, MR2), study_uid="1.2.4") is MR2  # type: ignore[arg-type]
    with pytest.raises(StudyNotFound, match=r"9\.9"):
        locate_study(Catalog(MR), study_uid="9.9")  # type: ignore[arg-type]


def test_resolve_node_by_name_default_and_only() -> None:
    one = Settings(pacs={"a": PacsNodeConfig()})
    assert resolve_node(one).name == "a"
    two = Settings(pacs={"a": PacsNodeConfig(), "b": PacsNodeConfig()}, default_pacs="b")
    assert resolve_node(two).name == "b"
    assert resolve_node(two, "a").name == "a"
    with pytest.raises(NodeConfigError, match=r"no PACS node named .c.*a, b"):
        resolve_node(two, "c")
    with pytest.raises(NodeConfigError, match="no PACS node is configured"):
        resolve_node(Settings())
    with pytest.raises(NodeConfigError, match="none was named"):
        resolve_node(Settings(pacs={"a": PacsNodeConfig(), "b": PacsNodeConfig()}))


def test_node_config_checks_transport() -> None:
    with pytest.raises(ValidationError, match="needs dicomweb_url"):
        PacsNodeConfig(transport="dicomweb")
    with pytest.raises(ValidationError, match="retrieve 'wado' needs transport 'dicomweb'"):
        PacsNodeConfig(retrieve="wado")
    web = PacsNode("w", PacsNodeConfig(transport="dicomweb", dicomweb_url="http://x/dicom-web"))
    assert web.retrieve_method == "wado" and "http://x/dicom-web" in web.describe()
