"""The MR brain workflow (nipype): DICOM series → one 4-channel float32 volume on the model grid.

Graph, per acquired role ``r`` (the *anchor* is T1 when present, else T1c)::

    convert_r (dcm2niix) → reorient_r → n4_r ─┬─────────────────────────→ resample_r
                                               └→ register_mni (anchor)  ─┤
                                               └→ coregister_r (others) ──┘
    resample_anchor → brain_mask ─┐
    resample_* ──→ merge ─────────┴→ normalise → input.npy

Each channel is resampled once, from its own bias-corrected voxels, through the composed
transform grid → anchor (affine) → channel (rigid). Node outputs are nipype's: every
node's inputs (parameters included) are hashed, so a rerun in the same ``base_dir`` reuses
finished nodes, and each node directory keeps its report.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("NIPYPE_NO_ET", "1")  # never phone home for nipype's version check

import numpy as np
from nipype import Node, Workflow
from nipype import logging as nipype_logging
from nipype.interfaces.dcm2nii import Dcm2niix
from nipype.interfaces.utility import Merge

from radpipe.preprocessing import grid, nodes, normalise, qc, registration
from radpipe.preprocessing.registration import params_dict

#: Order in which a role is chosen as the registration anchor.
ANCHOR_PREFERENCE: tuple[str, ...] = ("t1", "t1c", "flair", "t2")

FillMode = Literal["zeros", "anchor"]

#: How often nipype's MultiProc scheduler looks for finished and ready nodes.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class MRConfig:
    """Every parameter of the MR workflow (all recorded in provenance)."""

    n4: registration.N4Params = field(default_factory=registration.N4Params)
    template_registration: registration.RegistrationParams = registration.TEMPLATE_REGISTRATION
    coregistration: registration.RegistrationParams = registration.RIGID_COREG
    registration_spacing_mm: float = registration.REGISTRATION_SPACING_MM
    mask: normalise.MaskParams = field(default_factory=normalise.MaskParams)
    normalise: normalise.NormaliseParams = field(default_factory=normalise.NormaliseParams)
    thresholds: qc.QCThresholds = field(default_factory=qc.QCThresholds)
    #: Missing channels: "zeros" (z-score 0 = the brain's mean everywhere) or "anchor"
    #: (a copy of the anchor channel). Zeros is the default: a copy would show the model
    #: a T1c where it expects, say, a FLAIR, and invent oedema-like signal.
    fill_missing: FillMode = "zeros"
    #: nipype execution: "MultiProc" runs independent branches (the four conversion/N4
    #: chains, the co-registrations, the resamplings) in ``processes`` worker processes,
    #: one SimpleITK thread each; "Linear" runs node after node in this process.
    plugin: Literal["MultiProc", "Linear"] = "MultiProc"
    processes: int = 2
    threads: int = 1
    #: Registration threads: 1 keeps it bit-reproducible (see registration.set_threads).
    registration_threads: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON form for provenance."""
        return {
            "n4": params_dict(self.n4),
            "templateRegistration": params_dict(self.template_registration),
            "coregistration": params_dict(self.coregistration),
            "registrationSpacingMm": self.registration_spacing_mm,
            "mask": params_dict(self.mask),
            "normalise": params_dict(self.normalise),
            "qcThresholds": params_dict(self.thresholds),
            "fillMissing": self.fill_missing,
            "plugin": self.plugin,
            "processes": self.processes,
            "threads": self.threads,
            "registrationThreads": self.registration_threads,
            "grid": {
                "shape": list(grid.SHAPE),
                "spacing": list(grid.SPACING),
                "originRAS": list(grid.ORIGIN_RAS),
                "channels": list(grid.MR_CHANNELS),
            },
        }


@dataclass
class MRResult:
    """What the workflow produced (paths inside the nipype working directory)."""

    anchor: str
    input_npy: Path
    mask: Path
    transforms: dict[str, Path]  # role → composed grid→native transform
    registration_transforms: dict[str, Path]  # "anchor_to_mni", "<role>_to_<anchor>"
    niftis: dict[str, Path]  # role → dcm2niix output
    qc: qc.QCReport
    channel_stats: dict[str, Any]
    registration: dict[str, dict[str, Any]]
    node_seconds: dict[str, float]
    graph: dict[str, Any]
    seconds: float


def choose_anchor(roles: list[str]) -> str:
    """The role every other channel is registered to (and that is registered to MNI)."""
    for role in ANCHOR_PREFERENCE:
        if role in roles:
            return role
    raise ValueError(f"no usable MR role among {roles}; need one of {ANCHOR_PREFERENCE}")


def build_workflow(series_dirs: dict[str, Path], base_dir: Path, cfg: MRConfig) -> Workflow:
    """The nipype workflow for the roles present in ``series_dirs`` (role → DICOM folder)."""
    roles = [r for r in grid.MR_CHANNELS if r in series_dirs]
    anchor = choose_anchor(roles)
    wf = Workflow(name="mr_brain", base_dir=str(base_dir))
    wf.config["execution"] = {
        # nipype's scheduler wakes every poll_sleep_duration seconds (default 2 s) to hand
        # ready nodes to workers; with ten levels of dependencies that idle wait alone cost
        # ~15 s a study, so poll often (the loop is cheap).
        "poll_sleep_duration": str(POLL_SECONDS),
        "crashdump_dir": str(base_dir / "crash"),
        "stop_on_first_crash": "true",
        "remove_unnecessary_outputs": "false",
        "create_report": "true",
        "check_version": "false",
    }
    threads = cfg.threads
    n4, reg = params_dict(cfg.n4), cfg.registration_spacing_mm

    convert, n4_nodes, resample = {}, {}, {}
    for role in roles:
        convert[role] = Node(
            Dcm2niix(
                source_dir=str(series_dirs[role]),
                out_filename="image",
                compress="n",
                bids_format=True,
                crop=False,
            ),
            name=f"convert_{role}",
        )
        reorient = Node(nodes.Reorient(threads=threads), name=f"reorient_{role}")
        n4_nodes[role] = Node(
            nodes.BiasCorrect(params=n4, registration_spacing_mm=reg, threads=threads),
            name=f"n4_{role}",
        )
        resample[role] = Node(nodes.ResampleToGrid(threads=threads), name=f"resample_{role}")
        wf.connect(convert[role], "converted_files", reorient, "in_files")
        wf.connect(reorient, "out_file", n4_nodes[role], "in_file")
        wf.connect(n4_nodes[role], "out_file", resample[role], "in_file")

    to_mni = Node(
        nodes.RegisterToTemplate(
            params=params_dict(cfg.template_registration),
            registration_spacing_mm=reg,
            threads=cfg.registration_threads,
        ),
        name="register_mni",
    )
    wf.connect(n4_nodes[anchor], "out_reg_file", to_mni, "in_file")
    for role in roles:
        wf.connect(to_mni, "out_transform", resample[role], "grid_transform")
        if role == anchor:
            continue
        coreg = Node(
            nodes.CoRegister(
                params=params_dict(cfg.coregistration), threads=cfg.registration_threads
            ),
            name=f"coregister_{role}",
        )
        wf.connect(n4_nodes[anchor], "out_reg_file", coreg, "fixed_file")
        wf.connect(n4_nodes[role], "out_reg_file", coreg, "moving_file")
        wf.connect(coreg, "out_transform", resample[role], "coreg_transform")

    mask = Node(nodes.BrainMask(params=params_dict(cfg.mask), threads=threads), name="brain_mask")
    wf.connect(resample[anchor], "out_file", mask, "anchor_file")
    wf.connect(resample[anchor], "fov_file", mask, "fov_file")

    merge = Node(Merge(len(roles)), name="merge_channels")
    for i, role in enumerate(roles, start=1):
        wf.connect(resample[role], "out_file", merge, f"in{i}")
    norm = Node(
        nodes.Normalise(
            roles=roles,
            channels=list(grid.MR_CHANNELS),
            anchor=anchor,
            fill_missing=cfg.fill_missing,
            params=params_dict(cfg.normalise),
        ),
        name="normalise",
    )
    wf.connect(merge, "out", norm, "in_files")
    wf.connect(mask, "out_file", norm, "mask_file")
    return wf


def _quiet_nipype() -> None:
    from nipype import config as nipype_config

    for key in ("workflow_level", "interface_level", "utils_level"):
        nipype_config.set("logging", key, "WARNING")
    nipype_logging.update_logging(nipype_config)


def graph_summary(wf: Workflow) -> dict[str, Any]:
    """Nodes (with their interface) and edges (with the connected fields) of a workflow."""
    graph = wf._graph  # nipype keeps the node graph here; there is no public accessor
    node_list = [
        {
            "name": n.name,
            "interface": f"{type(n.interface).__module__}.{type(n.interface).__name__}",
        }
        for n in graph.nodes()
    ]
    edges = [
        {
            "from": u.name,
            "to": v.name,
            "fields": [f"{a}->{b}" for a, b in data.get("connect", [])],
        }
        for u, v, data in graph.edges(data=True)
    ]
    return {
        "nodes": sorted(node_list, key=lambda d: d["name"]),
        "edges": sorted(edges, key=lambda d: (d["from"], d["to"])),
    }


def run_mr_workflow(
    series_dirs: dict[str, Path], base_dir: Path, cfg: MRConfig | None = None
) -> MRResult:
    """Build and run the workflow (nipype MultiProc or Linear, see MRConfig) and gather results."""
    cfg = cfg or MRConfig()
    _quiet_nipype()
    wf = build_workflow(series_dirs, base_dir, cfg)
    roles = [r for r in grid.MR_CHANNELS if r in series_dirs]
    anchor = choose_anchor(roles)
    clock = time.perf_counter()
    if cfg.plugin == "MultiProc" and cfg.processes > 1:
        executed = wf.run(plugin="MultiProc", plugin_args={"n_procs": cfg.processes})
    else:
        executed = wf.run(plugin="Linear")
    seconds = time.perf_counter() - clock
    done = {n.name: n for n in executed.nodes()}

    def out(name: str) -> Any:
        return done[name].result.outputs

    node_seconds = {
        name: round(float(node.result.runtime.duration), 3) for name, node in sorted(done.items())
    }
    coverage = {role: float(out(f"resample_{role}").coverage) for role in roles}
    stats = json.loads(Path(out("normalise").stats_file).read_text())
    masked = out("brain_mask")
    report = qc.assess_mr(
        anchor,
        template_nmi=float(masked.template_nmi),
        template_corr=float(masked.template_corr),
        coverage=coverage,
        channel_nmi=stats["channelNMI"],
        thresholds=cfg.thresholds,
    )
    report.metrics["brainVolumeCm3"] = round(float(masked.volume_cm3), 2)
    reg_info: dict[str, dict[str, Any]] = {}
    reg_tfms: dict[str, Path] = {}
    for name in ["register_mni"] + [f"coregister_{r}" for r in roles if r != anchor]:
        o = out(name)
        key = f"{anchor}_to_mni" if name == "register_mni" else f"{name[11:]}_to_{anchor}"
        reg_tfms[key] = Path(o.out_transform)
        reg_info[key] = {
            "metric": round(float(o.metric), 6),
            "iterations": int(o.iterations),
            "stop": str(o.stop),
            **{k: round(v, 6) for k, v in dict(o.dense_metrics or {}).items()},
        }
    for role in roles:
        bias = out(f"n4_{role}").bias_range
        reg_info.setdefault("biasField", {})[role] = [round(float(v), 4) for v in bias]
        n_out = int(out(f"reorient_{role}").n_outputs)
        if n_out > 1:
            report.flag("review", f"dcm2niix split the {role} series into {n_out} volumes")
    converted = {}
    for role in roles:
        files = out(f"convert_{role}").converted_files
        files = files if isinstance(files, list) else [files]
        converted[role] = Path(sorted(files)[0])
    return MRResult(
        anchor=anchor,
        input_npy=Path(out("normalise").out_file),
        mask=Path(masked.out_file),
        transforms={role: Path(out(f"resample_{role}").out_transform) for role in roles},
        registration_transforms=reg_tfms,
        niftis=converted,
        qc=report,
        channel_stats=stats["channels"],
        registration=reg_info,
        node_seconds=node_seconds,
        graph=graph_summary(wf),
        seconds=round(seconds, 3),
    )


@cache
def dcm2niix_version() -> str:
    """The dcm2niix version string (for provenance)."""
    try:
        text = subprocess.run(
            ["dcm2niix", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    for line in text.splitlines():
        if line.strip().startswith("v1") or "version" in line:
            return line.strip()
    return text.strip().splitlines()[-1] if text.strip() else "unknown"


def load_input(path: Path) -> np.ndarray:
    """Read an ``input.npy`` (for tests and the infer stage)."""
    return np.load(path)
