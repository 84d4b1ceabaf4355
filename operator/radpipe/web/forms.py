"""The request form: option fields rendered from an app's options JSON schema, and the
submitted form turned back into a :class:`JobSpec` with messages a person can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from radpipe.api.models import ACCESSION_PATTERN, AnalysisApp, JobSpec, Priority

#: Shown next to the accession field and used by the as-you-type check.
ACCESSION_RULE = (
    "1 to 16 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
)
#: The same rule as an HTML ``pattern`` (which is anchored by the browser itself).
ACCESSION_HTML_PATTERN = ACCESSION_PATTERN.removeprefix("^").removesuffix("$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class OptionField:
    """One form control for one app option."""

    app: str
    name: str
    kind: str  # checkbox | number | select | text
    label: str
    help: str = ""
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    required: bool = False

    @property
    def input_name(self) -> str:
        """The form field name: one namespace per app, so apps cannot collide."""
        return f"opt.{self.app}.{self.name}"

    @property
    def input_id(self) -> str:
        """The element id (label ``for``)."""
        return f"opt-{self.app}-{self.name}"


def option_fields(app: AnalysisApp) -> list[OptionField]:
    """Form controls for the options an app's schema declares (booleans, numbers,
    enums, strings); anything else is left to the API."""
    schema = app.spec.options
    required = set(schema.get("required", []))
    fields: list[OptionField] = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        kind_of = prop.get("type")
        label = str(prop.get("title") or _humanize(name))
        common: dict[str, Any] = {
            "app": app.metadata.name,
            "name": name,
            "label": label,
            "help": str(prop.get("description", "")),
            "default": prop.get("default"),
            "required": name in required,
        }
        if "enum" in prop:
            choices = tuple(str(c) for c in prop["enum"])
            fields.append(OptionField(kind="select", choices=choices, **common))
        elif kind_of == "boolean":
            fields.append(OptionField(kind="checkbox", **common))
        elif kind_of in ("integer", "number"):
            fields.append(
                OptionField(
                    kind="number",
                    minimum=prop.get("minimum"),
                    maximum=prop.get("maximum"),
                    step="1" if kind_of == "integer" else "any",
                    **common,
                )
            )
        elif kind_of == "string":
            fields.append(OptionField(kind="text", **common))
    return fields


def _humanize(name: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).replace("_", " ")
    return words[:1].upper() + words[1:].lower()


@dataclass
class RequestForm:
    """What the person typed, kept to redisplay the form with errors next to fields."""

    accession: str = ""
    app: str = ""
    priority: str = Priority.ROUTINE.value
    email: str = ""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def value(self, opt: OptionField) -> Any:
        """The value to show in an option control: what was typed, else the default."""
        typed = self.options.get(opt.app, {})
        return typed.get(opt.name, opt.default)


def _coerce(opt: OptionField, raw: str | None) -> Any:
    if opt.kind == "checkbox":
        return raw is not None  # an unticked checkbox sends nothing
    if raw is None or raw == "":
        return None
    if opt.kind == "number":
        try:
            return int(raw) if opt.step == "1" else float(raw)
        except ValueError:
            raise ValueError(f"{opt.label}: enter a number") from None
    return raw


def parse_request(
    data: dict[str, str], apps: dict[str, AnalysisApp], default_pacs: str | None = None
) -> tuple[RequestForm, JobSpec | None]:
    """Read a submitted request form; the JobSpec is None when there are errors."""
    form = RequestForm(
        accession=data.get("accession", "").strip(),
        app=data.get("app", ""),
        priority=data.get("priority", Priority.ROUTINE.value),
        email=data.get("email", "").strip(),
    )
    if not form.accession:
        form.errors["accession"] = "Enter the accession number of the study."
    elif not re.match(ACCESSION_PATTERN, form.accession):
        form.errors["accession"] = f"Not a valid accession number: use {ACCESSION_RULE}."
    app = apps.get(form.app)
    if app is None:
        form.errors["app"] = "Choose an analysis."
    if form.priority not in {p.value for p in Priority}:
        form.errors["priority"] = "Choose stat, urgent or routine."
    if form.email and not _EMAIL.match(form.email):
        form.errors["email"] = "Enter an e-mail address like name@hospital.org, or leave it empty."
    options: dict[str, Any] = {}
    if app is not None:
        typed: dict[str, Any] = {}
        for opt in option_fields(app):
            raw = data.get(opt.input_name)
            typed[opt.name] = raw if opt.kind != "checkbox" else raw is not None
            try:
                value = _coerce(opt, raw)
            except ValueError as err:
                form.errors[opt.input_name] = str(err)
                continue
            if value is not None:
                options[opt.name] = value
            elif opt.required:
                form.errors[opt.input_name] = f"{opt.label} is required."
        form.options[app.metadata.name] = typed
    if form.errors:
        return form, None
    try:
        spec = JobSpec.model_validate(
            {
                "accession": form.accession,
                "app": form.app,
                "priority": form.priority,
                "options": options,
                "source": {"pacs": default_pacs},
                # Results go back to the PACS the study came from, as the viewer expects.
                "delivery": {
                    "pacs": [default_pacs] if default_pacs else [],
                    "email": [form.email] if form.email else [],
                },
            }
        )
    except ValidationError as err:
        form.errors["form"] = "; ".join(e["msg"] for e in err.errors())
        return form, None
    return form, spec
