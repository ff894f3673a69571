"""Import boundaries of campaign_engine, read from the source: every import statement, also those
inside functions and `if TYPE_CHECKING:` blocks, relative ones resolved.

- The pure core imports no web, database, queue, scheduler or network library nor durable-rules,
  directly or through the campaign_engine modules outside the core that it imports (importing
  `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` too, so those count).
- Only campaign_engine/store/ imports SQLAlchemy.
- Only campaign_engine/evaluation/engine.py imports durable-rules.
- Nothing imports an entry point (cli, api, scheduler, distributed.tasks) but another entry point,
  or a module of the entry point's own package (api.views.* importing api.auth).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "campaign_engine"

PURE_CORE = (
    "campaign_engine.rulebook",
    "campaign_engine.facts",
    "campaign_engine.selection",
    "campaign_engine.policy",
    "campaign_engine.rendering",
    "campaign_engine.evaluation.compiler",
    "campaign_engine.evaluation.explain",
    "campaign_engine.imports",
    "campaign_engine.masking",
    "campaign_engine.effect",
)
FRAMEWORKS = ("flask", "flask_smorest", "sqlalchemy", "alembic", "celery", "apscheduler", "redis", "requests",
              "httpx", "smtplib", "socket", "urllib.request", "durable", "durable_rules_engine")
SQLALCHEMY = ("sqlalchemy",)
STORE = ("campaign_engine.store",)
DURABLE_RULES = ("durable", "durable_rules_engine")  # durable_rules_engine: its C extension
ENGINE_HOST = ("campaign_engine.evaluation.engine",)
ENTRY_POINTS = ("campaign_engine.cli", "campaign_engine.api", "campaign_engine.console", "campaign_engine.scheduler",
                "campaign_engine.distributed.tasks")


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether a dotted name is one of `prefixes` or inside one of them."""
    return library(name, prefixes) is not None


def library(name: str, prefixes: tuple[str, ...]) -> str | None:
    """The one of `prefixes` that a dotted name is or is inside, else None."""
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # dotted name as imported: a module, or module.attribute for `from m import attribute`
    typing_only: bool = False  # under `if TYPE_CHECKING:`: still a dependency on the library's types


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_in(source: str, module: str, *, is_package: bool) -> Iterator[Import]:
    """Every import statement of one module's source, anywhere in it, relative names made absolute."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    tree = ast.parse(source)
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, node.lineno, alias.name, id(node) in typing_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                origin = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                yield Import(module, node.lineno, origin if alias.name == "*" else f"{origin}.{alias.name}",
                             id(node) in typing_only)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: tuple[Import, ...]


def scan() -> dict[str, Module]:
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path, tuple(imports_in(path.read_text(encoding="utf-8"), name,
                                                            is_package=is_package)))
    return modules


MODULES = scan()


def where(imp: Import) -> str:
    place = f"{MODULES[imp.module].path.relative_to(ROOT)}:{imp.line}"
    return f"{place}, under TYPE_CHECKING" if imp.typing_only else place


def loaded_by(target: str) -> list[str]:
    """The campaign_engine modules an import runs: the longest module prefix and its packages."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return [".".join(parts[:i]) for i in range(1, end + 1) if ".".join(parts[:i]) in MODULES]
    return []


def direct(module: Module, libraries: tuple[str, ...]) -> dict[str, Import]:
    """Library -> the first statement of `module` importing it (one line per library, not per name)."""
    found: dict[str, Import] = {}
    for imp in sorted(module.imports, key=lambda i: i.line):
        lib = library(imp.target, libraries)
        if lib is not None:
            found.setdefault(lib, imp)
    return found


def direct_violations(module: Module, libraries: tuple[str, ...]) -> list[str]:
    return [f"{module.name} imports {lib} ({where(imp)})" for lib, imp in direct(module, libraries).items()]


def reached_through_non_core(start: Module, libraries: tuple[str, ...]) -> list[str]:
    """The libraries that loading `start` imports in campaign_engine modules outside the core, each
    with the shortest chain of imports that gets there (a core module on the way is checked itself)."""
    found: dict[str, str] = {}
    seen = {start.name}
    queue: list[tuple[str, list[str]]] = [(start.name, [])]
    while queue:
        name, chain = queue.pop(0)
        for imp in sorted(MODULES[name].imports, key=lambda i: i.line):
            for loaded in loaded_by(imp.target):
                if loaded in seen or within(loaded, PURE_CORE):
                    continue
                seen.add(loaded)
                step = chain + [f"{loaded} ({where(imp)})"]
                for lib, bad in direct(MODULES[loaded], libraries).items():
                    found.setdefault(lib, f"{start.name} -> {' -> '.join(step)}, which imports {lib} ({where(bad)})")
                queue.append((loaded, step))
    return list(found.values())


def report(violations: list[str]) -> str:
    return f"{len(violations)} import(s) across a boundary:\n  " + "\n  ".join(sorted(set(violations)))


# --------------------------------------------------------------------------- the scan itself


def test_import_scan_reads_relative_and_function_level_imports():
    source = ("from ..store import db\nfrom . import sibling\nimport urllib.request\n"
              "def later():\n    from sqlalchemy.orm import Session\n"
              "if TYPE_CHECKING:\n    from sqlalchemy import Engine\n")
    found = {(i.target, i.typing_only) for i in imports_in(source, "campaign_engine.pkg.mod", is_package=False)}
    assert found == {("campaign_engine.store.db", False), ("campaign_engine.pkg.sibling", False),
                     ("urllib.request", False), ("sqlalchemy.orm.Session", False), ("sqlalchemy.Engine", True)}
    in_package = {i.target for i in imports_in("from .mod import x", "campaign_engine.pkg", is_package=True)}
    assert in_package == {"campaign_engine.pkg.mod.x"}


def test_import_scan_finds_the_package_and_its_core():
    assert "campaign_engine.evaluation.engine" in MODULES
    assert any(within(name, PURE_CORE) for name in MODULES)
    assert loaded_by("campaign_engine.rulebook.model.Rule") == [
        "campaign_engine", "campaign_engine.rulebook", "campaign_engine.rulebook.model"]


# --------------------------------------------------------------------------- boundaries


def test_pure_core_imports_no_framework():
    violations = []
    for module in MODULES.values():
        if not within(module.name, PURE_CORE):
            continue
        violations += direct_violations(module, FRAMEWORKS)
        violations += reached_through_non_core(module, FRAMEWORKS)
    assert not violations, report(violations)


def test_only_the_store_imports_sqlalchemy():
    violations = [line for module in MODULES.values() if not within(module.name, STORE)
                  for line in direct_violations(module, SQLALCHEMY)]
    assert not violations, report(violations)


def test_only_the_engine_module_imports_durable_rules():
    violations = [line for module in MODULES.values() if not within(module.name, ENGINE_HOST)
                  for line in direct_violations(module, DURABLE_RULES)]
    assert not violations, report(violations)


def test_nothing_imports_an_entry_point():
    violations = [f"{module.name} imports entry point {imp.target} ({where(imp)})"
                  for module in MODULES.values() if not within(module.name, ENTRY_POINTS)
                  for imp in module.imports if within(imp.target, ENTRY_POINTS)]
    assert not violations, report(violations)
