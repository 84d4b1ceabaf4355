"""Users and roles: the local user file (the embedded default) and password hashing.

The user file is YAML, one entry per user, with an scrypt password hash (never the
password)::

    users:
      - name: alice
        display: Dr Alice Example
        roles: [radiologist]
        department: neuro          # optional: see below
        password: scrypt$16384$8$1$<salt>$<hash>

``radpipe web add-user`` writes entries. Hospitals sign in through OIDC instead and map
their IdP groups to the same three roles (and a claim to the department).

Departments (optional): a job records the department of the person who requested it.
A job with a department is seen only by admins and by people of that department
(requesters: their own jobs; radiologists: all of their department's jobs); a job without
one (none configured, or made by intake or the CLI) follows the role rules alone. With no
departments anywhere, nothing changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The roles, from least to most: each role may do everything the ones before it may.
ROLES = ("requester", "radiologist", "admin")

# scrypt cost: ~50 ms per check on one core, slow enough for guessing, fast enough to sign in.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_DEPARTMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$"


class UserFileError(Exception):
    """The user file cannot be read or an entry in it is invalid."""


@dataclass(frozen=True)
class User:
    """A signed-in person: their login name, display name and roles."""

    name: str
    display: str = ""
    roles: tuple[str, ...] = ("requester",)
    via: str = "local"
    #: The user's department ("" when none is configured).
    department: str = ""

    def has(self, role: str) -> bool:
        """Whether the user holds ``role`` or a role above it."""
        wanted = ROLES.index(role)
        return any(r in ROLES and ROLES.index(r) >= wanted for r in self.roles)

    @property
    def label(self) -> str:
        """What the page header shows."""
        return self.display or self.name

    def session_form(self) -> dict[str, Any]:
        """The JSON-safe form kept in the signed session cookie."""
        return {
            "name": self.name,
            "display": self.display,
            "roles": list(self.roles),
            "via": self.via,
            "department": self.department,
        }

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> User:
        """Rebuild a user from :meth:`session_form`."""
        return cls(
            name=str(data["name"]),
            display=str(data.get("display", "")),
            roles=tuple(str(r) for r in data.get("roles", ())),
            via=str(data.get("via", "local")),
            department=str(data.get("department") or ""),
        )


def hash_password(password: str) -> str:
    """An scrypt hash of ``password`` with a fresh salt, as stored in the user file."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash of a random password: checked when the user is unknown, so timing does not tell.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


@dataclass
class UserFile:
    """The local user file: read on each sign-in so edits apply without a restart."""

    path: Path
    _entries: list[dict[str, Any]] = field(default_factory=list)

    def load(self) -> list[dict[str, Any]]:
        """The entries of the file (empty when it does not exist yet)."""
        if not self.path.exists():
            return []
        try:
            data = yaml.safe_load(self.path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UserFileError(f"cannot read user file {self.path}: {err}") from err
        entries = data.get("users", []) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise UserFileError(f"user file {self.path} must hold a 'users:' list")
        for entry in entries:
            if not isinstance(entry, dict) or "name" not in entry or "password" not in entry:
                raise UserFileError(f"user file {self.path}: each user needs name and password")
            unknown = set(entry.get("roles", [])) - set(ROLES)
            if unknown:
                raise UserFileError(
                    f"user file {self.path}: user {entry['name']} has unknown roles "
                    f"{sorted(unknown)}; roles are {', '.join(ROLES)}"
                )
            department = entry.get("department")
            if department is not None and not (
                isinstance(department, str) and re.match(_DEPARTMENT_PATTERN, department)
            ):
                raise UserFileError(
                    f"user file {self.path}: user {entry['name']} has an invalid department "
                    f"{department!r}: 1-64 letters, digits, spaces, . _ -"
                )
        return entries

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when name and password match, else None."""
        for entry in self.load():
            if entry["name"] == name:
                if verify_password(password, str(entry["password"])):
                    roles = tuple(entry.get("roles") or ("requester",))
                    return User(
                        name=name,
                        display=str(entry.get("display", "")),
                        roles=roles,
                        department=str(entry.get("department") or ""),
                    )
                return None
        verify_password(password, _DUMMY_HASH)
        return None

    def set_user(
        self, name: str, password: str, roles: list[str], display: str = "", department: str = ""
    ) -> None:
        """Add a user or replace their password, roles, display name and department."""
        if department and not re.match(_DEPARTMENT_PATTERN, department):
            raise UserFileError(f"invalid department {department!r}: letters, digits, . _ -")
        if not re.match(_NAME_PATTERN, name):
            raise UserFileError(f"invalid user name {name!r}: letters, digits, . _ @ -")
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise UserFileError(f"roles must be some of {', '.join(ROLES)}")
        entries = [e for e in self.load() if e["name"] != name]
        entry: dict[str, Any] = {"name": name, "display": display, "roles": roles}
        if department:
            entry["department"] = department
        entry["password"] = hash_password(password)
        entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(yaml.safe_dump({"users": entries}, sort_keys=False))
        partial.chmod(0o600)
        partial.replace(self.path)
