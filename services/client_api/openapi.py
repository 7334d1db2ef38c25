"""The OpenAPI document the Client API serves: specs/openapi/client-api.yaml itself, bundled.

The spec `$ref`s its schemas from `specs/schemas/*.json` (one definition shared with AsyncAPI
and codegen). Served over HTTP those relative references would not resolve, so they are inlined:
each `components.schemas` entry that points at a schema file gets that schema, and every `$ref`
between schema files becomes `#/components/schemas/<Name>`. Nothing else is changed.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "specs" / "openapi" / "client-api.yaml"

Target = tuple[Path, str]  # (schema file, JSON pointer inside it)


def _split(ref: str, base: Path) -> Target:
    file_part, _, fragment = ref.partition("#")
    path = (base.parent / file_part).resolve() if file_part else base
    return path, fragment


def _pointer(doc: Any, fragment: str) -> Any:
    node = doc
    for raw in [p for p in fragment.split("/") if p]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class _Bundler:
    def __init__(self, spec_path: Path) -> None:
        self.spec_path = spec_path.resolve()
        self.doc: dict[str, Any] = yaml.safe_load(self.spec_path.read_text(encoding="utf-8"))
        self.files: dict[Path, Any] = {}
        self.names: dict[Target, str] = {}
        schemas = self.doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.items():
            ref = schema.get("$ref") if isinstance(schema, dict) else None
            if isinstance(ref, str) and not ref.startswith("#"):
                self.names[_split(ref, self.spec_path)] = name

    def _load(self, path: Path) -> Any:
        if path not in self.files:
            self.files[path] = json.loads(path.read_text(encoding="utf-8"))
        return self.files[path]

    def _name_for(self, target: Target) -> str:
        if target not in self.names:
            # A schema file the spec does not list itself: add it under its title.
            node = _pointer(self._load(target[0]), target[1])
            name = str(node.get("title") or target[0].stem)
            self.names[target] = name
            self.doc["components"]["schemas"][name] = self._inline(target)
        return self.names[target]

    def _inline(self, target: Target) -> Any:
        node = copy.deepcopy(_pointer(self._load(target[0]), target[1]))
        for key in ("$schema", "$id", "$defs"):
            if isinstance(node, dict):
                node.pop(key, None)
        return self._rewrite(node, target[0])

    def _rewrite(self, node: Any, base: Path) -> Any:
        if isinstance(node, list):
            return [self._rewrite(item, base) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if base == self.spec_path and value.startswith("#"):
                    out[key] = value
                else:
                    out[key] = f"#/components/schemas/{self._name_for(_split(value, base))}"
            else:
                out[key] = self._rewrite(value, base)
        return out

    def bundle(self) -> dict[str, Any]:
        schemas = self.doc["components"]["schemas"]
        for target, name in list(self.names.items()):
            schemas[name] = self._inline(target)
        for key in list(self.doc):
            if key != "components":
                self.doc[key] = self._rewrite(self.doc[key], self.spec_path)
        for key in list(self.doc["components"]):
            if key != "schemas":
                self.doc["components"][key] = self._rewrite(
                    self.doc["components"][key], self.spec_path
                )
        return self.doc


@cache
def served_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The bundled spec (cached; treat as read-only)."""
    return _Bundler(path).bundle()


@cache
def _path_patterns() -> list[tuple[re.Pattern[str], frozenset[str]]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return [
        (
            re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
            frozenset(m.upper() for m in item if m in methods),
        )
        for path, item in served_spec()["paths"].items()
    ]


def path_methods(path: str) -> list[str]:
    """The HTTP methods the spec defines for a concrete request path (for `Allow`)."""
    found: set[str] = set()
    for pattern, methods in _path_patterns():
        if pattern.match(path):
            found |= methods
    return sorted(found)
