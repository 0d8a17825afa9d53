"""PACS nodes and our own Application Entity, kept in ``pacs.json`` in the user data folder.

A node is a remote DICOM Application Entity: its AE title, host and TCP port (PS3.8 7.1,
PS3.7 D.3.3). ``retrieve`` says how studies come back from it: ``get`` (C-GET over the same
association) or ``move`` (C-MOVE: the node opens a second association to our Storage SCP, so it
must know our AE title, host and port). Our side (:class:`LocalAE`) is the calling AE title and
the port our temporary Storage SCP listens on during a C-MOVE.

The file is small JSON, written atomically; the CLI (``radassist pacs node ...``) and the GUI's
settings both edit it through :class:`NodeConfig`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.infra.errors import ConfigError

CONFIG_VERSION = 1
RetrieveMethod = Literal["get", "move"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,253}$")


def validate_ae_title(value: str, what: str = "AE title") -> str:
    """An AE title per PS3.5 6.2 (AE): 1-16 characters, no backslash or control characters,
    not only spaces. Leading and trailing spaces are not significant and are removed."""
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{what} is empty", hint="use 1 to 16 characters, e.g. ORTHANC")
    if len(text) > 16:
        raise ConfigError(
            f"{what} {text!r} is {len(text)} characters long", hint="use at most 16 characters"
        )
    if "\\" in text or any(ord(c) < 0x20 or ord(c) > 0x7E for c in text):
        raise ConfigError(
            f"{what} {text!r} has characters DICOM does not allow",
            hint="use letters, digits, spaces and punctuation other than backslash",
        )
    return text


def validate_port(value: Any, what: str = "port") -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {value!r} is not a number", hint="use 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{what} {port} is out of range", hint="use 1 to 65535")
    return port


def validate_host(value: str) -> str:
    text = str(value).strip()
    if not _HOST_RE.match(text):
        raise ConfigError(
            f"host {text!r} is not a host name or IP address",
            hint="e.g. pacs.example.org or 192.0.2.10",
        )
    return text


def validate_name(value: str) -> str:
    text = str(value).strip()
    if not _NAME_RE.match(text):
        raise ConfigError(
            f"node name {text!r} is not allowed",
            hint="use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return text


@dataclass(frozen=True)
class PacsNode:
    """A remote Application Entity."""

    name: str
    ae_title: str
    host: str
    port: int
    retrieve: RetrieveMethod = "get"

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", validate_name(self.name))
        object.__setattr__(self, "ae_title", validate_ae_title(self.ae_title, "called AE title"))
        object.__setattr__(self, "host", validate_host(self.host))
        object.__setattr__(self, "port", validate_port(self.port))
        if self.retrieve not in ("get", "move"):
            raise ConfigError(
                f"retrieve method {self.retrieve!r} is not known", hint="use 'get' or 'move'"
            )

    def describe(self) -> str:
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port}, {self.retrieve})"


@dataclass(frozen=True)
class LocalAE:
    """Our own AE: the calling AE title, and where our Storage SCP listens for C-MOVE."""

    ae_title: str = "RADASSIST"
    port: int = 11112
    bind_address: str = "0.0.0.0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", validate_ae_title(self.ae_title, "our AE title"))
        object.__setattr__(self, "port", validate_port(self.port, "our port"))
        object.__setattr__(self, "bind_address", validate_host(self.bind_address))


@dataclass
class NodeConfig:
    """The nodes and our AE, loaded from and saved to a JSON file."""

    path: Path
    local: LocalAE = field(default_factory=LocalAE)
    nodes: dict[str, PacsNode] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> NodeConfig:
        """Read the config (an empty one when the file does not exist yet)."""
        if path is None:
            from desktop_app.infra.userdirs import pacs_config_path

            path = pacs_config_path()
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(p)
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"the PACS configuration can't be read: {' '.join(str(err).split())[:150]}",
                p,
                "fix the JSON or move the file aside",
            ) from None
        try:
            local = LocalAE(**raw.get("local", {}))
            nodes = {name: PacsNode(name=name, **values) for name, values in raw["nodes"].items()}
        except ConfigError as err:
            raise ConfigError(err.reason, p, err.hint) from None
        except (KeyError, TypeError, AttributeError) as err:
            raise ConfigError(
                f"the PACS configuration has an unexpected layout ({err})",
                p,
                "fix the JSON or move the file aside",
            ) from None
        return cls(p, local, nodes)

    def save(self) -> Path:
        data = {
            "version": CONFIG_VERSION,
            "local": asdict(self.local),
            "nodes": {
                name: {k: v for k, v in asdict(node).items() if k != "name"}
                for name, node in sorted(self.nodes.items())
            },
        }
        return atomic_write_json(self.path, data)

    def get(self, name: str) -> PacsNode:
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(sorted(self.nodes)) or "none"
            raise ConfigError(
                f"no PACS node named {name!r} (configured: {known})",
                hint="add one with `radassist pacs node add NAME --aet AET --host HOST --port PORT`",
            ) from None

    def add(self, node: PacsNode, replace_existing: bool = False) -> None:
        if node.name in self.nodes and not replace_existing:
            raise ConfigError(
                f"a PACS node named {node.name!r} exists already",
                hint="remove it first, or use --replace",
            )
        self.nodes[node.name] = node

    def remove(self, name: str) -> PacsNode:
        node = self.get(name)
        del self.nodes[name]
        return node

    def set_local(self, **changes: Any) -> LocalAE:
        self.local = replace(self.local, **changes)
        return self.local
