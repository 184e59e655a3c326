"""The daemon's layout holds: the engine knows nothing of the service, the audit, the clients or
the command line, and touches no sockets and no signals (docs/pipeline.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.signals import REPO

DAEMON = REPO / "daemon"
ENGINE_MAY_IMPORT = ("dfd.daemon.engine", "dfd.daemon.settings", "dfd.daemon.logs")
NOT_IN_THE_ENGINE = {"zmq", "socket", "signal", "click", "prometheus_client"}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def test_the_engine_imports_only_itself_and_the_shared_settings() -> None:
    modules = sorted((DAEMON / "engine").glob("*.py"))
    assert {m.stem for m in modules} >= {"pipeline", "callstream", "events", "scoring"}
    for module in modules:
        imported = imports_of(module)
        daemon_parts = {name for name in imported if name.startswith("dfd.daemon")}
        stray = {name for name in daemon_parts if not name.startswith(ENGINE_MAY_IMPORT)}
        assert stray == set(), module.name
        top_level = {name.split(".")[0] for name in imported}
        assert top_level & NOT_IN_THE_ENGINE == set(), module.name


def test_every_subpackage_says_what_it_owns() -> None:
    for init in sorted(DAEMON.glob("*/__init__.py")) + sorted(DAEMON.glob("*/*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert docstring, init.relative_to(REPO)
    listed = (REPO / "docs" / "pipeline.md").read_text(encoding="utf-8")
    for package in sorted(p.parent.name for p in DAEMON.glob("*/__init__.py")):
        assert f"  {package}/" in listed, package


def test_clients_need_neither_the_engine_nor_the_service_loop() -> None:
    """dfd subscribe and dfd status run on an integrator's machine: no torch, no pipeline."""
    for module in sorted((DAEMON / "clients").glob("*.py")):
        imported = imports_of(module)
        assert not {n for n in imported if n.startswith(("dfd.daemon.engine", "torch"))}
        assert "dfd.daemon.service.serve" not in imported
