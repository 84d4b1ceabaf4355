"""The stage registry: stage name -> Stage class.

Built-in stages are named here by import path and imported only when first used, so
``radpipe --help`` does not pay for SimpleITK, ONNX Runtime or pynetdicom.
"""

from __future__ import annotations

import importlib

from radpipe.pipeline.contract import Stage

#: Built-in stages, by name, as "module:Class". A later issue adds each when it lands.
BUILTIN_STAGES: dict[str, str] = {
    "fetch": "radpipe.stages.fetch:FetchStage",
    "classify": "radpipe.stages.classify:ClassifyStage",
    "preprocess": "radpipe.stages.preprocess:PreprocessStage",
    "infer": "radpipe.stages.infer:InferStage",
    "postprocess": "radpipe.stages.postprocess:PostprocessStage",
    "report": "radpipe.stages.report:ReportStage",
    "deliver": "radpipe.stages.deliver:DeliverStage",
}

_registered: dict[str, type[Stage]] = {}


class UnknownStage(LookupError):
    """No stage of that name is registered."""


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Register a stage class under its ``name`` (usable as a class decorator)."""
    _registered[cls.name] = cls
    return cls


def unregister_stage(name: str) -> None:
    """Forget a registered stage (tests use this to clean up)."""
    _registered.pop(name, None)


def stage_names() -> list[str]:
    """Every stage name that can be run."""
    return sorted(set(_registered) | set(BUILTIN_STAGES))


def get_stage(name: str) -> type[Stage]:
    """The class of stage ``name``, importing a built-in stage on first use."""
    if name in _registered:
        return _registered[name]
    target = BUILTIN_STAGES.get(name)
    if target is None:
        raise UnknownStage(
            f"no stage named {name!r}; known stages: {', '.join(stage_names()) or '(none)'}"
        )
    module_name, _, class_name = target.partition(":")
    cls: type[Stage] = getattr(importlib.import_module(module_name), class_name)
    _registered[name] = cls
    return cls
