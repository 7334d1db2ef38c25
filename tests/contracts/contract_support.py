"""Paths and helpers shared by the contract tests (specs/, generated/, scripts/codegen)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
SCHEMAS_DIR = SPECS / "schemas"
OPENAPI_PATH = SPECS / "openapi" / "client-api.yaml"
ASYNCAPI_PATH = SPECS / "asyncapi" / "pubsub.yaml"
GENERATED = REPO / "generated"
CODEGEN = REPO / "scripts" / "codegen"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
INTERNAL_CONTRACTS = REPO / "docs" / "internal-contracts.md"

SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*.json"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def schema_registry() -> Registry:
    """Every specs/schemas file, registered under its file URI (relative `$ref`s resolve)."""
    registry: Registry = Registry()
    for path in SCHEMA_FILES:
        resource = Resource.from_contents(load_json(path), default_specification=DRAFT202012)
        registry = registry.with_resource(path.as_uri(), resource)
    return registry.crawl()


def iter_refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Yield (json pointer, $ref value) for every `$ref` in a parsed JSON/YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield pointer, value
            else:
                yield from iter_refs(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_refs(value, f"{pointer}/{index}")


def resolve_pointer(document: Any, fragment: str) -> Any:
    """Resolve a JSON pointer fragment (without '#') inside a parsed document."""
    node = document
    for raw in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def resolve_ref(ref: str, base_file: Path, base_doc: Any) -> tuple[Path, Any]:
    """Resolve a `$ref` written in `base_file`: returns (file it lands in, target node)."""
    file_part, _, fragment = ref.partition("#")
    if file_part:
        target_file = (base_file.parent / file_part).resolve()
        document = (
            load_json(target_file) if target_file.suffix == ".json" else load_yaml(target_file)
        )
    else:
        target_file, document = base_file, base_doc
    return target_file, resolve_pointer(document, fragment)


@cache
def documented_enumerations() -> dict[str, list[str]]:
    """The binding enumerations of docs/internal-contracts.md ("- Name: `a`, `b`, ...")."""
    wanted = {
        "Delinquency stage": "DelinquencyStage",
        "Call status": "CallStatus",
        "Call outcome": "CallOutcome",
        "Conversation state": "ConversationState",
        "Transcript speaker": "Speaker",
    }
    text = INTERNAL_CONTRACTS.read_text(encoding="utf-8")
    section = text.split("## Enumerations", 1)[1].split("\n## ", 1)[0]
    found: dict[str, list[str]] = {}
    # an item may wrap onto the next lines: join continuation lines first
    items = re.split(r"\n- ", "\n" + section.replace("\n  ", " "))
    for item in items:
        label, _, rest = item.partition(":")
        label = re.sub(r"\s*\(.*?\)", "", label).strip()  # "Call outcome (set once, ...)"
        if label in wanted:
            found[wanted[label]] = re.findall(r"`([a-z_]+)`", rest)
    missing = set(wanted.values()) - set(found)
    assert not missing, f"docs/internal-contracts.md lost the enumerations {sorted(missing)}"
    return found
