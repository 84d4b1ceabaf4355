"""radpipe's own Storage SCP: the C-MOVE destination that retrieved instances arrive at.

One listener per (interface, port) is shared by every retrieve in the process and runs only
while at least one retrieve needs it. Each retrieve registers the study it asked for and the
:class:`~radpipe.dicom.instances.StudySink` that takes its instances; an instance of a study
nobody asked for is refused (status 0x0124), so a misrouted C-MOVE cannot mix studies.

Associations are accepted only when they call radpipe by its C-MOVE destination AE title
(``pacs.<node>.move_destination``) and come from the AE title of a PACS node that is
retrieving into this listener right now (``pacs.<node>.ae_title``); any other is rejected
at association time, so nobody else on the network can push instances into a job.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
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

    def __init__(self, bind: str, port: int, ae_title: str, calling_ae: str) -> None:
        self.bind = bind
        self.port = port
        self._key = (bind, port)
        self.ae_title = ae_title
        self._routes: dict[str, tuple[StudySink, int]] = {}
        self._callers: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._users = 0
        ae = AE(ae_title=ae_title)
        ae.maximum_pdu_size = MAX_PDU
        ae.network_timeout = 60
        ae.require_called_aet = True
        # Never empty: pynetdicom reads an empty list as "accept any calling AE".
        ae.require_calling_aet = [calling_ae]
        self._ae = ae
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
        cls,
        bind: str,
        port: int,
        ae_title: str,
        study_uid: str,
        sink: StudySink,
        *,
        calling_ae: str,
    ) -> Iterator[StorageReceiver]:
        """Accept instances of ``study_uid`` into ``sink`` while the block runs, sent by
        ``calling_ae`` (the PACS performing the C-MOVE) to ``ae_title``."""
        with cls._registry_lock:
            receiver = cls._running.get((bind, port))
            if receiver is None:
                receiver = cls(bind, port, ae_title, calling_ae)
                cls._running[(bind, port)] = receiver
            elif receiver.ae_title != ae_title:
                raise PacsError(
                    f"radpipe's Storage SCP on {bind}:{port} already runs as {receiver.ae_title!r}"
                    f", not {ae_title!r}",
                    hint="PACS nodes sharing a storage_port must use the same move_destination",
                )
            receiver._users += 1
            receiver._add_caller(calling_ae)
        try:
            receiver._add_route(study_uid, sink)
        except BaseException:
            cls._release(receiver, calling_ae)
            raise
        try:
            yield receiver
        finally:
            receiver._remove_route(study_uid)
            cls._release(receiver, calling_ae)

    @classmethod
    def _release(cls, receiver: StorageReceiver, calling_ae: str) -> None:
        """One user less; the last one stops the listener."""
        with cls._registry_lock:
            receiver._remove_caller(calling_ae)
            receiver._users -= 1
            if receiver._users == 0:
                cls._running.pop(receiver._key, None)
                receiver._server.shutdown()
                log.info("storage SCP on %s:%d stopped", receiver.bind, receiver.port)

    def _add_caller(self, calling_ae: str) -> None:
        """Accept associations from ``calling_ae`` too."""
        self._callers[calling_ae] += 1
        self._ae.require_calling_aet = sorted(self._callers)

    def _remove_caller(self, calling_ae: str) -> None:
        """One retrieve by ``calling_ae`` less; the last one stops accepting it."""
        self._callers[calling_ae] -= 1
        if self._callers[calling_ae] <= 0:
            del self._callers[calling_ae]
        if self._callers:  # never empty: that would accept anybody
            self._ae.require_calling_aet = sorted(self._callers)

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
