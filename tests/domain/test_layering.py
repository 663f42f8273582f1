"""The domain decides, the edges do I/O: only the composition root (services.py) picks the
adapters in store/, and the adapters never reach back up into the services."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "session_manager" / "python" / "session_manager"
COMPOSITION_ROOT = "services.py"
SERVICES = {"speaker", "listener", "captions", "connections", "ending", "sweeper", "services", "handler", "delivery"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_only_the_composition_root_imports_the_store_adapters():
    offenders = {
        path.name
        for path in PACKAGE.glob("*.py")
        if path.name != COMPOSITION_ROOT
        and any(name.startswith("session_manager.store") for name in imported_modules(path))
    }

    assert offenders == set()


def test_no_domain_module_imports_boto3_or_botocore_but_the_catalogue_and_the_adapters():
    # languages.py asks Translate and Polly which languages exist, once per container.
    offenders = {
        path.name
        for path in PACKAGE.glob("*.py")
        if path.name != "languages.py"
        and any(name.split(".")[0] in ("boto3", "botocore") for name in imported_modules(path))
    }

    assert offenders == set()


def test_the_adapters_never_import_the_services():
    for path in (PACKAGE / "store").glob("*.py"):
        reaching_up = {
            name for name in imported_modules(path) if name.split(".")[1:2] and name.split(".")[1] in SERVICES
        }
        assert reaching_up == set(), (path.name, reaching_up)
