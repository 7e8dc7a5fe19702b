"""The plan stage reads top-down: the modules of gradcheck_magic/plan, in the order its docstring
lists them, each import only modules listed below them (no import circle, one module per role); an
adapter registered in ADAPTERS but not yet in the map sits with the adapters."""

import ast
import re
from pathlib import Path

import gradcheck_magic.plan as plan

PLAN = Path(plan.__file__).parent


def listed() -> list:
    """The module map of plan/__init__'s docstring, top-down."""
    block = plan.__doc__.split("Modules, top-down")[1].split("How a check is planned")[0]
    return re.findall(r"^    (\w+)\s{2,}", block, flags=re.MULTILINE)


def imports(module: str) -> set:
    path = PLAN / ("__init__.py" if module == "__init__" else f"{module}.py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module] if node.module else [a.name for a in node.names])
    return found


def test_every_plan_module_is_in_the_map_and_imports_only_those_below_it():
    order = listed()
    files = {p.stem for p in PLAN.glob("*.py")}
    adapters = {a.__name__.rsplit(".", 1)[-1] for a in plan.ADAPTERS}
    unlisted = sorted(files - set(order))
    assert set(unlisted) <= adapters, f"{set(unlisted) - adapters}: add them to plan/__init__'s module map"
    order = [m for m in order if m in files]  # a module merged away (snapshot, into safety.py)
    order = order[:1] + unlisted + order[1:]  # an adapter not yet in the map sits with the adapters
    for i, module in enumerate(order):
        below = set(order[i + 1 :])
        assert imports(module) <= below, f"{module} imports {imports(module) - below} from above it"


def test_the_old_plan_modules_are_gone_from_the_package_root():
    root = PLAN.parent
    assert not any(
        (root / f"{m}.py").exists() for m in ("discovery", "conventions", "layers", "objects", "problem")
    )
