"""A test-only node agent: a kubelet stand-in that runs pods as local processes.

It registers a Node, binds every pending pod (acting as the scheduler: there is one node
and nothing to choose), runs the pod's single container command as a local process with
the pod's environment (``env``, ``envFrom`` Secrets/ConfigMaps, ``fieldRef`` to name and
namespace), and reports the pod's phase and the container's exit code back through the
pods/status subresource, so the real Job controller completes or fails the Jobs.

What it does not do, and how the harness copes:
- no images: an image's entrypoint is mapped to a local program (``--entrypoint
  radpipe=python -m tests.cluster.stage_shim`` runs the venv's radpipe with the test
  stages registered);
- no volumes: the pod's service-account token is obtained with a TokenRequest for the
  pod's ServiceAccount and handed over as a kubeconfig (``KUBECONFIG``), so the stage
  runs with exactly the RBAC its account has;
- no log API (no kubelet endpoint): like a kubelet with
  ``terminationMessagePolicy: FallbackToLogsOnError``, it puts the last lines of a failed
  container's output in ``state.terminated.message``, which the operator reads; the full
  logs stay in ``<workdir>/logs/<namespace>_<pod>.log``;
- pods being deleted are killed and removed at once (grace period 0).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("node-agent")

#: kubelet's FallbackToLogsOnError keeps at most 80 lines / 2048 bytes.
TERMINATION_LINES = 80
TERMINATION_BYTES = 2048


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeAgent:
    """Runs the pods bound to one Node as processes on this machine."""

    def __init__(
        self,
        api: client.ApiClient,
        node: str,
        workdir: Path,
        entrypoints: dict[str, list[str]],
        server: str,
        max_running: int,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.node = node
        self.workdir = workdir
        self.entrypoints = entrypoints
        self.server = server
        self.slots = threading.Semaphore(max_running)
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.started: set[str] = set()
        self.lock = threading.Lock()
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        (workdir / "pods").mkdir(parents=True, exist_ok=True)

    # -- node ---------------------------------------------------------------------------

    def register(self) -> None:
        """Create (or refresh) the Node object, Ready, with a GPU to offer."""
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "500", "nvidia.com/gpu": "1"}
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {"kubernetes.io/hostname": self.node, "radpipe.io/test-node": "true"},
            },
        }
        with contextlib.suppress(ApiException):
            self.core.create_node(body)
        status = {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "radpipe test node agent is running pods as processes",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "radpipe-node-agent",
                    "kubeProxyVersion": "",
                    "containerRuntimeVersion": "process://local",
                    "bootID": "",
                    "kernelVersion": "",
                    "machineID": "",
                    "osImage": "local",
                    "systemUUID": "",
                },
            }
        }
        self.core.patch_node_status(self.node, status)

    # -- pods ---------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Watch all pods; bind, run, kill and remove them as they come."""
        resource_version = None
        while True:
            try:
                listing = self.core.list_pod_for_all_namespaces()
                resource_version = listing.metadata.resource_version
                for pod in listing.items:
                    self.handle(pod)
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=resource_version,
                    timeout_seconds=300,
                )
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.handle(event["object"])
            except ApiException as err:
                if err.status != 410:  # 410: resourceVersion too old, just relist
                    log.warning("watch failed: %s", err.reason)
                    time.sleep(1)
            except Exception:
                log.exception("watch loop error")
                time.sleep(1)

    def handle(self, pod: Any) -> None:
        meta, spec, status = pod.metadata, pod.spec, pod.status
        key = f"{meta.namespace}/{meta.name}"
        if meta.deletion_timestamp is not None:
            if spec.node_name == self.node:
                self.kill(key)
                with contextlib.suppress(ApiException):
                    self.core.delete_namespaced_pod(
                        meta.name, meta.namespace, grace_period_seconds=0
                    )
            return
        if not spec.node_name:
            self.bind(meta.namespace, meta.name)
            return
        if spec.node_name != self.node or status.phase in ("Succeeded", "Failed"):
            return
        with self.lock:
            if key in self.started:
                return
            self.started.add(key)
        threading.Thread(target=self.run_pod, args=(pod,), daemon=True, name=key).start()

    def bind(self, namespace: str, name: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        try:
            # _preload_content=False: the client cannot parse the Status this call returns.
            self.core.create_namespaced_binding(namespace, body, _preload_content=False)
        except ApiException as err:
            if err.status != 409:
                log.warning("cannot bind %s/%s: %s", namespace, name, err.reason)

    def kill(self, key: str) -> None:
        with self.lock:
            process = self.running.get(key)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    # -- running one pod ----------------------------------------------------------------

    def environment(self, pod: Any, container: Any, home: Path) -> dict[str, str]:
        namespace = pod.metadata.namespace
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HOSTNAME": pod.metadata.name,
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1",
        }
        for source in container.env_from or []:
            if source.secret_ref is not None:
                secret = self.core.read_namespaced_secret(source.secret_ref.name, namespace)
                for k, v in (secret.data or {}).items():
                    env[(source.prefix or "") + k] = base64.b64decode(v).decode()
            if source.config_map_ref is not None:
                cm = self.core.read_namespaced_config_map(source.config_map_ref.name, namespace)
                for k, v in (cm.data or {}).items():
                    env[(source.prefix or "") + k] = v
        for item in container.env or []:
            if item.value is not None:
                env[item.name] = item.value
            elif item.value_from is not None:
                env[item.name] = self.value_from(pod, item.value_from)
        env["KUBECONFIG"] = str(self.token_kubeconfig(pod, home))
        return env

    def value_from(self, pod: Any, source: Any) -> str:
        namespace = pod.metadata.namespace
        if source.secret_key_ref is not None:
            secret = self.core.read_namespaced_secret(source.secret_key_ref.name, namespace)
            return base64.b64decode(secret.data[source.secret_key_ref.key]).decode()
        if source.config_map_key_ref is not None:
            cm = self.core.read_namespaced_config_map(source.config_map_key_ref.name, namespace)
            return str(cm.data[source.config_map_key_ref.key])
        if source.field_ref is not None:
            return {
                "metadata.name": pod.metadata.name,
                "metadata.namespace": namespace,
                "spec.nodeName": self.node,
                "spec.serviceAccountName": pod.spec.service_account_name or "default",
            }.get(source.field_ref.field_path, "")
        return ""

    def token_kubeconfig(self, pod: Any, home: Path) -> Path:
        """A kubeconfig holding a token of the pod's ServiceAccount (TokenRequest)."""
        account = pod.spec.service_account_name or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                },
            },
        }
        token = self.core.create_namespaced_service_account_token(
            account, pod.metadata.namespace, request
        ).status.token
        path = home / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig(self.server, token, pod.metadata.namespace)))
        return path

    def command(self, container: Any) -> list[str]:
        argv = list(container.command or []) + list(container.args or [])
        if not argv:
            raise ValueError("the container names no command (images are not run here)")
        entry = self.entrypoints.get(argv[0])
        return (entry + argv[1:]) if entry else argv

    def run_pod(self, pod: Any) -> None:
        meta = pod.metadata
        key = f"{meta.namespace}/{meta.name}"
        container = pod.spec.containers[0]
        home = self.workdir / "pods" / f"{meta.namespace}_{meta.name}"
        home.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / "logs" / f"{meta.namespace}_{meta.name}.log"
        with self.slots:
            started = now()
            try:
                env = self.environment(pod, container, home)
                argv = self.command(container)
            except (ApiException, ValueError, KeyError) as err:
                self.report(pod, started, 128, f"cannot start the container: {err}", "Error")
                return
            with open(log_path, "wb") as out:
                process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=home,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            with self.lock:
                self.running[key] = process
            self.report_running(pod, started, process.pid)
            deadline = pod.spec.active_deadline_seconds
            try:
                code = process.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                self.kill(key)
                code = process.wait()
            with self.lock:
                self.running.pop(key, None)
        reason = "Completed" if code == 0 else "Error"
        message = None
        if code != 0:
            text = log_path.read_bytes()[-TERMINATION_BYTES:].decode(errors="replace")
            message = "\n".join(text.splitlines()[-TERMINATION_LINES:])
        self.report(pod, started, code if code >= 0 else 128 - code, message, reason)

    def report_running(self, pod: Any, started: str, pid: int) -> None:
        container = pod.spec.containers[0]
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": started,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
                {"type": "Ready", "status": "True", "lastTransitionTime": started},
            ],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": f"local://{container.image}",
                    "containerID": f"process://{pid}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": started}},
                }
            ],
        }
        self.patch_status(pod, status)

    def report(self, pod: Any, started: str, code: int, message: str | None, reason: str) -> None:
        container = pod.spec.containers[0]
        finished = now()
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": finished,
        }
        if message:
            terminated["message"] = message
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": started,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "PodCompleted",
                    "lastTransitionTime": finished,
                },
            ],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": f"local://{container.image}",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
        self.patch_status(pod, status)

    def patch_status(self, pod: Any, status: dict[str, Any]) -> None:
        for attempt in range(5):
            try:
                self.core.patch_namespaced_pod_status(
                    pod.metadata.name, pod.metadata.namespace, {"status": status}
                )
                return
            except ApiException as err:
                if err.status == 404:
                    return  # deleted meanwhile
                time.sleep(0.2 * (attempt + 1))
        log.warning("could not report status of %s", pod.metadata.name)


def kubeconfig(server: str, token: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for the test API server (self-signed certificate) and a bearer token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "user", "namespace": namespace}}
        ],
        "current-context": "test",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", default="radpipe-test-node")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument(
        "--entrypoint",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="run COMMAND (shell words) where a container's command starts with NAME",
    )
    parser.add_argument("--max-running", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node-agent %(message)s")
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    config.load_kube_config(args.kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = args.max_running + 8
    api = client.ApiClient(configuration)
    entrypoints = {}
    for item in args.entrypoint:
        name, _, command = item.partition("=")
        entrypoints[name] = shlex.split(command)
    agent = NodeAgent(
        api, args.node, args.workdir, entrypoints, configuration.host, args.max_running
    )
    agent.register()
    log.info("node %s registered; running pods", args.node)
    sys.stdout.flush()
    agent.run_forever()


if __name__ == "__main__":
    main()
