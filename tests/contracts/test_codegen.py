"""generated/ is exactly what scripts/codegen makes of specs/, and it imports cleanly."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from contract_support import CODEGEN, GENERATED, REPO, SCHEMA_FILES, SCHEMAS_DIR, load_json

SHARED_TITLES = {load_json(p)["title"] for p in SCHEMA_FILES if p.name != "client_api.json"}


def find_codegen() -> str:
    """The datamodel-codegen next to this interpreter (the project venv), else on PATH."""
    beside = Path(sys.executable).parent / "datamodel-codegen"
    if beside.exists():
        return str(beside)
    found = shutil.which("datamodel-codegen")
    assert found, "datamodel-codegen is not installed (it is a pinned dev dependency)"
    return found


def generated_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_codegen_script_is_executable_bash() -> None:
    assert os.access(CODEGEN, os.X_OK), "scripts/codegen must be executable"
    assert CODEGEN.read_text().startswith("#!/usr/bin/env bash\n")


def test_generated_is_up_to_date(tmp_path: Path) -> None:
    """Regenerate from a copy of specs/ + scripts/codegen and compare byte for byte."""
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / "scripts").mkdir()
    shutil.copy2(CODEGEN, tmp_path / "scripts" / "codegen")
    result = subprocess.run(
        [str(tmp_path / "scripts" / "codegen")],
        capture_output=True,
        text=True,
        env={**os.environ, "DATAMODEL_CODEGEN": find_codegen()},
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"scripts/codegen failed:\n{result.stdout}\n{result.stderr}"

    expected = generated_files(tmp_path / "generated")
    actual = generated_files(GENERATED)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n])
    assert not (missing or extra or changed), (
        "generated/ is stale: it is not what scripts/codegen produces from specs/.\n"
        f"  missing: {missing}\n  not generated: {extra}\n  different: {changed}\n"
        "Run scripts/codegen and commit the result; never edit generated/ by hand."
    )


def test_generated_package_is_marked() -> None:
    assert (GENERATED / "__init__.py").exists()
    readme = (GENERATED / "README.md").read_text()
    assert "do not edit; run `scripts/codegen`" in readme


@pytest.mark.parametrize("schema_file", SCHEMA_FILES, ids=lambda p: p.name)
def test_one_importable_module_per_schema_file(schema_file: Path) -> None:
    module = importlib.import_module(f"generated.{schema_file.stem}")
    title = load_json(schema_file)["title"]
    if schema_file.name != "client_api.json":
        assert hasattr(module, title), f"generated.{schema_file.stem} lacks {title}"


def test_client_api_module_has_the_rest_models_and_no_twins() -> None:
    client_api = importlib.import_module("generated.client_api")
    definitions = load_json(SCHEMAS_DIR / "client_api.json")["$defs"]
    for name in definitions:
        assert hasattr(client_api, name), f"generated.client_api lacks {name}"
    # shared payloads are imported from their own module, never re-declared here
    tree = ast.parse((GENERATED / "client_api.py").read_text())
    declared = {
        node.targets[0].id if isinstance(node, ast.Assign) else node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        or (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name))
    }
    twins = declared & SHARED_TITLES
    assert not twins, f"generated/client_api.py re-declares shared types: {sorted(twins)}"
    from generated.call import Call
    from generated.money import Money

    assert client_api.Call is Call
    assert client_api.Money is Money


def test_each_class_is_declared_once_across_the_package() -> None:
    owners: dict[str, list[str]] = {}
    for path in sorted(GENERATED.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                owners.setdefault(node.name, []).append(path.name)
    twins = {name: files for name, files in owners.items() if len(files) > 1}
    assert not twins, f"classes generated more than once: {twins}"
