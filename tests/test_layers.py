"""pudet's data flows one way: tools -> purification (the workflow) -> engine (trainers, pseudo-labelling) ->
evaluation -> modeling and data -> pu (the maths) -> config, utils, compat. No module imports a layer above its
own, and none hides an import of pudet inside a function (where an import cycle would go unseen), except
pudet.compat: applied before detectron2 is imported, it loads its own parts only when they are asked for."""
import ast
import glob
import os

from .helpers import REPO

LAYERS = {"compat": 0, "config": 0, "utils": 0, "pu": 1, "modeling": 2, "data": 2, "evaluation": 3, "engine": 4,
          "purification": 5}


def _module(path):
    """``pudet/engine/trainers.py`` -> ``["pudet", "engine", "trainers"]`` (a package is its ``__init__``)."""
    parts = os.path.relpath(path, REPO)[:-len(".py")].split(os.sep)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path):
    """``(layer imported, at module level?)`` for each import of a pudet module in the file at ``path``."""
    package = _module(path) if path.endswith("__init__.py") else _module(path)[:-1]
    tree = ast.parse(open(path).read())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            target = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
        elif (node.module or "").startswith("pudet."):
            target = node.module.split(".")
        else:
            continue
        yield target[1] if len(target) > 1 else None, id(node) in top


def test_no_module_imports_a_layer_above_its_own():
    upward, hidden = [], []
    for path in glob.glob(os.path.join(REPO, "pudet", "**", "*.py"), recursive=True):
        module = _module(path)
        if len(module) < 2:
            continue  # pudet/__init__.py: the package's public names
        for layer, at_top in _imports(path):
            name = ".".join(module)
            if not at_top and module[1] != "compat":
                hidden.append(f"{name} imports pudet.{layer} in a function")
            if layer is not None and LAYERS[layer] > LAYERS[module[1]]:
                upward.append(f"{name} imports pudet.{layer}")
            if module[1] == "pu" and layer != "pu":  # the pure maths: nothing of pudet but itself
                upward.append(f"{name} imports pudet.{layer}")
    assert upward == [] and hidden == []
