"""Which prompt version a call will use, read from the `version:` front matter in `prompts/`.

The scheduler pins it in `call-dispatch` so a call records the prompts it was conducted with;
the conversation core renders the prompts themselves. Each file is read once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from services.common.prompt_variants import DEFAULT_VARIANT, PROMPTS_DIR

__all__ = ["PROMPTS_DIR", "prompt_version"]


@functools.cache
def _front_matter_version(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"{path}: missing front matter")
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() == "version" and value.strip():
            return value.strip()
    raise ValueError(f"{path}: front matter has no version")


def prompt_version(
    stage: str, variant: str = DEFAULT_VARIANT, directory: Path = PROMPTS_DIR
) -> str:
    """`policy@<v>+<stage>/<variant>@<v>`, the same string the conversation core records."""
    policy = _front_matter_version(directory / "policy.md")
    staged = _front_matter_version(directory / "stages" / stage / f"{variant}.md")
    return f"policy@{policy}+{stage}/{variant}@{staged}"
