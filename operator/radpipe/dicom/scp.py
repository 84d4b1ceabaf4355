"""radpipe's own Storage SCP: the C-MOVE destination that retrieved instances arrive at.

One listener per (interface, port) is shared by every retrieve in the process and runs only
while at least one retrieve needs it. Each retrieve registers the study it asked for and the
:class:`~radpipe.dicom.instances.StudySink` that takes its instances; an instance of a study
nobody asked for is refused (status 0x0124), so a misrouted C-MOVE cannot mix studies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from radpipe.dicom.contexts import VERIFICATION
from radpipe.dicom.errors import PacsError
from radpipe.dicom.instances import CorruptInstance, StudySink, inspect_instance

log = logging.getLogger(__name__)

#: Largest PDU we accept: big PDUs mean fewer round trips for 100 kB+ images.
MAX_PDU = 1 << 20


class StorageReceiver:
    """A running Storage SCP and the studies it currently accepts instances for."""

    _running: ClassVar[dict[tuple[str, int], StorageReceiver]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, bind: str, port: int, ae_title: str) -> None:
        self.bind = bind
        self.port = port
        self.ae_title = ae_title
        self._routes: dict[str, tuple[StudySink, int]] = {}
        self._lock = threading.Lock()
        self._users = 0
        ae = AE(ae_title=ae_title)
        ae.maximum_pdu_size = MAX_PDU
        ae.network_timeout = 60
        ae.add_supported_context(VERIFICATION)
        # As the accepting side we are not bound by the 128-context limit: take every class.
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        try:
            server = ae.start_server(
                (bind, port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
            )
        except OSError as err:
            raise PacsError(
                f"cannot start radpipe's Storage SCP on {bind}:{port}: {err.strerror}",
                hint="another program uses that port; set pacs.<node>.storage_port to a free "
                "port and register it at the PACS as the C-MOVE destination",
            ) from err
        if server is None:  # start_server(block=False) always returns the server
            raise PacsError(f"radpipe's Storage SCP on {bind}:{port} did not start")
        self._server = server
        self.port = int(server.server_address[1])
        log.info("storage SCP %s listening on %s:%d", ae_title, bind, self.port)

    @classmethod
    @contextmanager
    def serving(
        cls, bind: str, port: int, ae_title: str, study_uid: str, sink: StudySink
    ) -> Iterator[StorageReceiver]:
        """Accept instances of ``study_uid`` into ``sink`` while the block runs."""
        with cls._registry_lock:
            receiver = cls._running.get((bind, port))
            if receiver is None:
                receiver = cls(bind, port, ae_title)
                cls._running[(bind, port)] = receiver
            receiver._users += 1
        receiver._add_route(study_uid, sink)
        try:
            yield receiver
        finally:
            receiver._remove_route(study_uid)
            with cls._registry_lock:
                receiver._users -= 1
                if receiver._users == 0:
                    cls._running.pop((bind, port), None)
                    receiver._server.shutdown()
                    log.info("storage SCP on %s:%d stopped", bind, receiver.port)

    def _add_route(self, study_uid: str, sink: StudySink) -> None:
        with self._lock:
            current, count = self._routes.get(study_uid, (sink, 0))
            if current is not sink:
                raise PacsError(
                    f"study {study_uid} is already being retrieved by another job in this process",
                    hint="wait for that retrieve to finish",
                )
            self._routes[study_uid] = (sink, count + 1)

    def _remove_route(self, study_uid: str) -> None:
        with self._lock:
            sink, count = self._routes[study_uid]
            if count <= 1:
                del self._routes[study_uid]
            else:
                self._routes[study_uid] = (sink, count - 1)

    def _on_store(self, event: evt.Event) -> int:
        data = event.encoded_dataset()
        try:
            header = inspect_instance(data)
        except CorruptInstance as bad:
            with self._lock:
                sinks = [sink for sink, _ in self._routes.values()]
            if len(sinks) == 1:  # the only study being retrieved: keep it there for inspection
                sinks[0].keep_corrupt(data, bad)
                return 0x0000
            return 0xC000  # Error: cannot understand
        with self._lock:
            route = self._routes.get(header.study_instance_uid)
        if route is None:
            log.warning("refused an instance of a study no retrieve asked for")
            return 0x0124  # Refused: not authorized
        return route[0].accept(header, data)
