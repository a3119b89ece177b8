"""The layout of the tests themselves (issue 14): test data and clients come from tests.factories,
conftest modules hold fixtures, and no module imports from a conftest module (pytest loads those on
its own; importing one runs it a second time under another name and hides where a helper lives) or
from another test module (whose tests would then be collected twice if a test function came along)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(TESTS.rglob("*.py")):
        yield str(path.relative_to(TESTS.parent)), ast.parse(path.read_text(), filename=str(path))


def helper_imports(tree: ast.Module) -> list[str]:
    """The conftest and test modules `tree` imports from (`from tests.x.conftest import y`,
    `import tests.x.test_z`...): a helper that lives in one of those is in the wrong place."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if name.startswith("tests.") and (last == "conftest" or last.startswith("test_")):
                found.append((node.lineno, name))
    return [f"line {line}: {name}" for line, name in sorted(found)]


def is_fixture(node: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)


def test_no_module_imports_from_a_conftest_or_test_module() -> None:
    offenders = {path: found for path, tree in modules() if (found := helper_imports(tree))}
    assert offenders == {}, "import test data from tests.factories and helpers from a helper module"


def test_the_check_sees_an_import_from_a_conftest_or_test_module() -> None:
    tree = ast.parse("from tests.campaigns.conftest import add_campaign\nimport tests.conftest\n"
                     "def f():\n    from tests.conftest import migrate\n"
                     "from tests.payments.test_payments import a_booking\nfrom tests.web import test_bad_input\n")
    assert helper_imports(tree) == ["line 1: tests.campaigns.conftest", "line 2: tests.conftest",
                                    "line 4: tests.conftest", "line 5: tests.payments.test_payments",
                                    "line 6: tests.web.test_bad_input"]
    assert helper_imports(ast.parse("from tests.factories.campaigns import add_campaign\n"
                                    "from tests.schema.catalog import catalog_lines\n")) == []


def test_conftest_modules_define_only_fixtures_hooks_and_their_private_helpers() -> None:
    """Anything public a conftest defined would be something a test wants to import."""
    public = {}
    for path, tree in modules():
        if not path.endswith("conftest.py"):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and (is_fixture(node) or node.name.startswith(("pytest_", "_"))):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                    isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # the docstring
                continue
            if isinstance(node, ast.Expr) and "filterwarnings" in ast.unparse(node):
                continue
            public.setdefault(path, []).append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    assert public == {}, "move these to tests/factories/ (test data, clients) or a helpers module"


def test_one_helper_makes_a_signed_in_client() -> None:
    defined = [(path, node.name) for path, tree in modules() for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef) and node.name in ("client_for", "authed")]
    assert defined == [("tests/factories/accounts.py", "client_for")]
