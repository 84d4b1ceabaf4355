"""PACS nodes by name: look one up in the configuration and describe it for messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from radpipe.dicom.errors import NodeConfigError

if TYPE_CHECKING:
    from radpipe.config import PacsNodeConfig, Settings


@dataclass(frozen=True)
class PacsNode:
    """A configured PACS node and the name it is configured under."""

    name: str
    config: PacsNodeConfig

    @property
    def transport(self) -> str:
        """``dimse`` or ``dicomweb``."""
        return self.config.transport

    @property
    def retrieve_method(self) -> str:
        """How studies are pulled: ``c-get``, ``c-move`` or ``wado`` (always for DICOMweb)."""
        return "wado" if self.config.transport == "dicomweb" else self.config.retrieve

    def describe(self) -> str:
        """``name (AE@host:port)`` or ``name (DICOMweb URL)``, for messages."""
        cfg = self.config
        if cfg.transport == "dicomweb":
            return f"{self.name} (DICOMweb {cfg.dicomweb_url})"
        return f"{self.name} ({cfg.ae_title}@{cfg.host}:{cfg.port})"


def resolve_node(settings: Settings, name: str | None = None) -> PacsNode:
    """The node called ``name``; without a name, ``default_pacs`` or else the only node.

    Raises :class:`NodeConfigError` naming the configured nodes when that is not possible.
    """
    nodes = settings.pacs
    known = ", ".join(sorted(nodes)) or "(none)"
    if name is None:
        name = settings.default_pacs
    if name is None:
        if len(nodes) == 1:
            name = next(iter(nodes))
        elif not nodes:
            raise NodeConfigError(
                "no PACS node is configured",
                hint="add one under `pacs:` in radpipe.yaml (see `radpipe config schema`), "
                "or start the embedded archive with `radpipe pacs serve DIR`",
            )
        else:
            raise NodeConfigError(
                f"several PACS nodes are configured ({known}) and none was named",
                hint="name one (--node / source.pacs) or set default_pacs in the config",
            )
    config = nodes.get(name)
    if config is None:
        raise NodeConfigError(
            f"no PACS node named {name!r} in the configuration; configured nodes: {known}",
            hint="check the name, or add the node under `pacs:` in radpipe.yaml",
        )
    return PacsNode(name, config)
