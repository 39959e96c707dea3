"""The import rules of ARCHITECTURE.md §3 that import-linter cannot express, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "followup"
DOMAINS = {
    "customers",
    "events",
    "rules",
    "strategies",
    "policy",
    "followups",
    "dispatch",
    "calls",
    "channels",
    "surveys",
    "rewards",
    "cases",
    "insights",
    "data_rights",
    "privacy",
    "staff",
    "webhooks",
}
SQL_BUILDERS = {"select", "insert", "update", "delete"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _domain_of(path: Path) -> str | None:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 and parts[0] in DOMAINS else None


def test_no_domain_reaches_into_another_domains_repository_or_models() -> None:
    offences = []
    for path in SRC.rglob("*.py"):
        own = _domain_of(path)
        if own is None:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if (
                len(parts) >= 3
                and parts[0] == "followup"
                and parts[1] in DOMAINS
                and parts[1] != own
                and (parts[2] in {"repository", "models"} or parts[2].endswith("_repository"))
            ):
                offences.append(f"{path.relative_to(SRC)} imports {name}")
    assert offences == []


def test_sql_is_built_only_in_repositories_and_the_kernel() -> None:
    offences = []
    for path in SRC.rglob("*.py"):
        if _domain_of(path) is None or path.name in {"repository.py", "models.py"} or path.stem.endswith("_repository"):
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "sqlalchemy" and parts[-1] in SQL_BUILDERS:
                offences.append(f"{path.relative_to(SRC)} imports {name}")
    assert offences == []
