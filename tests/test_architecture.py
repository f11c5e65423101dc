"""The package's shape holds: the layered import contract passes and an upward import breaks it, no two
modules import each other (imports inside functions counted), the package's own imports sit at module level,
test doubles stay out of the registries, and the controller stays small."""

import ast
import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "llm2llm_jax")
MODULES = sorted(glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True))


def _source(path: str) -> str:
    with open(path) as f:
        return f.read()


LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint_imports(root: str) -> subprocess.CompletedProcess:
    """import-linter with the repository's contract, on the package found under `root`."""
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run(
        [LINT_IMPORTS, os.path.join(root, "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_layers_contract_holds():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module,upward",
    [
        ("model/lora.py", "from llm2llm_jax.student import train"),
        ("data/tasks.py", "from llm2llm_jax.teacher import prompts"),
        ("teacher/filters.py", "from llm2llm_jax.run import controller"),
    ],
)
def test_an_upward_import_breaks_the_contract_even_inside_a_function(tmp_path, module, upward):
    """A copy of the package with one upward import, made inside a function where it is easiest to hide."""
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "llm2llm_jax", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), copy / "pyproject.toml")
    with open(copy / "llm2llm_jax" / module, "a") as f:
        f.write(f"\n\ndef _sneaky():\n    {upward}\n")
    result = _lint_imports(str(copy))
    assert result.returncode != 0
    importer = "llm2llm_jax." + module.removesuffix(".py").replace("/", ".")
    assert "BROKEN" in result.stdout and importer in result.stdout


def _own_imports(path: str):
    """(line, imported module, at module level) of every import of the package's own modules in `path`."""
    tree = ast.parse(_source(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llm2llm_jax"):
            yield node.lineno, node.module, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("llm2llm_jax"):
                    yield node.lineno, alias.name, id(node) in top


def test_no_import_cycle_between_any_two_modules():
    import grimp

    graph = grimp.build_graph("llm2llm_jax", cache_dir=None)
    cycles = sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    )
    assert cycles == []


def test_the_packages_own_imports_are_at_module_level():
    """A function-level import is for an optional heavy dependency, never to hide an edge of the graph."""
    inside = [
        f"{os.path.relpath(path, ROOT)}:{line} imports {module}"
        for path in MODULES
        for line, module, at_top in _own_imports(path)
        if not at_top
    ]
    assert inside == []


def test_no_test_double_is_registered():
    from llm2llm_jax.augment.methods import METHODS
    from llm2llm_jax.teacher.factory import BACKENDS

    assert set(BACKENDS) == {"gemini", "openai", "local"}
    assert set(METHODS) == {"finetune", "llm2llm", "auggpt", "eda", "pool"}
    sources = "".join(_source(path) for path in MODULES)
    assert "Scripted" not in sources and "scripted" not in sources


def _functions(path: str):
    for node in ast.walk(ast.parse(_source(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_the_controller_stays_small():
    assert len(_source(os.path.join(PACKAGE, "run", "controller.py")).splitlines()) <= 250
    long = [
        f"{os.path.basename(path)}:{name} ({n} lines)"
        for path in glob.glob(os.path.join(PACKAGE, "run", "*.py"))
        for name, n in _functions(path)
        if n > 40
    ]
    assert long == []


def test_every_module_says_what_it_owns():
    """Each module's docstring starts with the line that says what lives there."""
    missing = [
        os.path.relpath(path, ROOT) for path in MODULES if not ast.get_docstring(ast.parse(_source(path)))
    ]
    assert missing == []
