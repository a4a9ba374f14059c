"""The repository stands alone: no file points outside it, and docs/ names what the code has.

A clone has only what is tracked here, so a reference to a design kept beside the
repository is a dead link for everyone else. The docs tests keep docs/contracts.md and
docs/lessons.md from silently falling behind the registry and the recorder.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from flows import registry
from flows.recorder import KINDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHECKED_SUFFIXES = {".py", ".js", ".md", ".html", ".txt", ".toml", ".yml", ".yaml"}
SKIPPED_DIRS = {".venv", ".git", "var", ".ci", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache", "test-artifacts"}
# Built from parts so this file does not match itself.
FORBIDDEN = ("../" + "shared", "shared" + "/DESIGN", "DESIGN" + ".md")


def repo_files() -> list[Path]:
    """Tracked and new (not ignored) files; a plain walk where there is no git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=30,
        ).stdout.decode().split("\0")
        paths = [ROOT / name for name in listed if name]
    except (OSError, subprocess.SubprocessError):
        paths = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
            paths.extend(Path(folder) / name for name in files)
    return [
        p for p in paths
        if p.suffix in CHECKED_SUFFIXES and p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts[:-1])
    ]


def test_no_file_refers_to_a_path_outside_the_repository():
    files = repo_files()
    assert any(p.name == "README.md" for p in files), f"found no files to check under {ROOT}"
    offending = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if any(word in line for word in FORBIDDEN):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offending, "point these at docs/ instead:\n" + "\n".join(offending)


def table_names(text: str) -> set[str]:
    """Names in the first column of Markdown tables: ``| `name` | …``."""
    return set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, flags=re.MULTILINE))


def test_contracts_list_every_workflow_and_every_event_kind():
    listed = table_names((DOCS / "contracts.md").read_text(encoding="utf-8"))
    missing_workflows = sorted(set(registry.WORKFLOWS) - listed)
    missing_kinds = sorted(KINDS - listed)
    assert not missing_workflows, f"docs/contracts.md has no row for workflows {missing_workflows}"
    assert not missing_kinds, f"docs/contracts.md has no row for event kinds {missing_kinds}"


def test_lessons_name_every_workflow():
    text = (DOCS / "lessons.md").read_text(encoding="utf-8")
    missing = sorted(slug for slug in registry.WORKFLOWS if f"`{slug}`" not in text)
    assert not missing, f"docs/lessons.md does not say which lesson {missing} show"


def test_the_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("architecture.md", "contracts.md", "lessons.md"):
        assert f"docs/{name}" in readme
        assert (DOCS / name).is_file()
