"""What a stage function reaches in the project's own code, read statically from the source (ast), never by
importing it: the modules whose code can change its result (DVC code dependencies), the attributes it reads
(config files come through ProjectPaths properties), and the params.yaml keys it reads.

Reachability is by name, one top-level definition at a time: from the stage function, every name it uses is
resolved through the imports in scope (module-level and function-level alike, relative ones included) to a
function, class or assignment of another project module, and so on. A class is reached whole (its methods
run on instances made elsewhere); a module used as a value, not as `module.name`, is reached whole.
Statements that run when a module is imported (constants, `matplotlib.use`) count for every module reached,
and so do the `__init__.py` files of its packages. Calls through a dict or an attribute of an object are
covered by the definition that built it (`FAMILIES = {...}` names every family class).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_PACKAGES = ("components", "trackflow", "flows")
IMPORTED = ""  # the name of a work item that only imports its module

# Params properties and aliases (components/params.py) -> the params.yaml keys they stand for.
PARAMS_ALIASES = {
    "validation": "validate",
    "validate_": "validate",
    "registry": "register",
    "register_": "register",
}
PARAMS_PROPERTIES = {("train", "tuning"): ("train.profile", "train.profiles")}
# Reading these is using the whole object they are called on.
WHOLE_OBJECT_METHODS = {"model_dump", "model_dump_json", "model_copy", "dict", "json"}


@dataclass
class _Module:
    name: str
    path: Path
    package: str  # what a relative import in it is relative to
    defs: dict[str, list[ast.AST]]  # top-level name -> the statements that define it
    bindings: dict[str, tuple[str, str | None]]  # module-level imported name -> (module, attribute)
    import_time: list[ast.stmt]  # module-level statements that run on import but define no name


@dataclass
class Reach:
    """What one entry point reaches."""

    modules: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    params_keys: set[str] = field(default_factory=set)
    strings: set[tuple[str, str]] = field(default_factory=set)  # (module, string constant)

    def files(self, index: ModuleIndex) -> list[str]:
        return sorted(index.relative_path(name) for name in self.modules)


class ModuleIndex:
    """The project's modules under `root`, parsed on first use."""

    def __init__(self, root: Path, packages: Iterable[str] = PROJECT_PACKAGES) -> None:
        self.root = Path(root)
        self.packages = tuple(packages)
        self._modules: dict[str, _Module | None] = {}

    def is_project(self, name: str) -> bool:
        return name.split(".")[0] in self.packages

    def file_of(self, name: str) -> Path | None:
        base = self.root.joinpath(*name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def relative_path(self, name: str) -> str:
        path = self.file_of(name)
        if path is None:
            raise KeyError(name)
        return path.relative_to(self.root).as_posix()

    def get(self, name: str) -> _Module | None:
        if name not in self._modules:
            self._modules[name] = self._parse(name) if self.is_project(name) else None
        return self._modules[name]

    def _parse(self, name: str) -> _Module | None:
        path = self.file_of(name)
        if path is None:
            return None
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        module = _Module(name, path, package, {}, {}, [])
        for statement in _flatten_module_level(tree.body):
            if isinstance(statement, ast.Import | ast.ImportFrom):
                module.bindings.update(self.import_bindings(statement, package))
                continue
            names = _defined_names(statement)
            if names:
                for defined in names:
                    module.defs.setdefault(defined, []).append(statement)
            elif not _is_docstring(statement):
                module.import_time.append(statement)
        return module

    def import_bindings(
        self, node: ast.Import | ast.ImportFrom, package: str
    ) -> dict[str, tuple[str, str | None]]:
        """Local name -> (module, attribute): `import a.b` binds a -> (a, None); `from a import b` binds
        b -> (a.b, None) when a.b is a module, else (a, b)."""
        bound: dict[str, tuple[str, str | None]] = {}
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = (top, None)
            return bound
        source = _absolute(node.module, node.level, package)
        for alias in node.names:
            if alias.name == "*":
                continue
            local = alias.asname or alias.name
            submodule = f"{source}.{alias.name}"
            bound[local] = (submodule, None) if self.file_of(submodule) else (source, alias.name)
        return bound


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, module] if module else base)


def _flatten_module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, with those inside `if TYPE_CHECKING:` / `try:` blocks lifted out."""
    for statement in body:
        if isinstance(statement, ast.If | ast.Try):
            blocks = [statement.body, statement.orelse]
            if isinstance(statement, ast.Try):
                blocks += [h.body for h in statement.handlers] + [statement.finalbody]
            for block in blocks:
                yield from _flatten_module_level(block)
        else:
            yield statement


def _defined_names(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
        targets = [statement.target]
    names = []
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                names.append(node.id)
    return names


def _is_docstring(statement: ast.stmt) -> bool:
    """A statement that does nothing when the module is imported: a docstring or `pass`."""
    return isinstance(statement, ast.Pass) or (
        isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
    )


def _chain(node: ast.expr) -> list[str] | None:
    """`a.b.c` -> ["a", "b", "c"]; None when the base is not a plain name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


class Analyzer:
    """Reachability from entry points `(module, name)`; `skip_params_in` names definitions whose reading of
    params is not an input of any result (a hash of all parameters, as a run tag)."""

    def __init__(self, index: ModuleIndex, skip_params_in: Iterable[tuple[str, str]] = ()) -> None:
        self.index = index
        self.skip_params_in = set(skip_params_in)

    def reach(self, entries: Iterable[tuple[str, str]]) -> Reach:
        found = Reach()
        done: set[tuple[str, str | None]] = set()
        work: list[tuple[str, str | None]] = list(entries)
        while work:
            item = work.pop()
            if item in done:
                continue
            done.add(item)
            module_name, name = item
            module = self.index.get(module_name)
            if module is None:
                continue
            if name == IMPORTED:
                # Importing runs the module's import-time statements: a dependency only when it has some.
                if module.import_time or module.path.name == "__init__.py":
                    self._mark_module(module_name, found, work)
                continue
            self._mark_module(module_name, found, work)
            if name is None:  # the whole module
                work.extend((module_name, defined) for defined in module.defs)
                continue
            if name in module.defs:
                for statement in module.defs[name]:
                    params_free = (module_name, name) in self.skip_params_in
                    work.extend(self._visit(module, statement, found, params_free))
            elif name in module.bindings:  # a re-export: follow it to its definition
                work.append(self._resolve(module.bindings[name]))
            elif self.index.file_of(f"{module_name}.{name}"):
                work.append((f"{module_name}.{name}", None))
        return found

    def _mark_module(self, name: str, found: Reach, work: list[tuple[str, str | None]]) -> None:
        """A module reached runs its import-time statements, and its packages' __init__ files run first."""
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            module = self.index.get(prefix)
            if module is None or prefix in found.modules:
                continue
            found.modules.add(prefix)
            for statement in module.import_time:
                work.extend(self._visit(module, statement, found, params_free=False))
            work.extend(
                (target, IMPORTED) for target, _ in module.bindings.values() if self.index.is_project(target)
            )

    def _resolve(self, binding: tuple[str, str | None]) -> tuple[str, str | None]:
        module, attribute = binding
        if attribute is not None and self.index.file_of(f"{module}.{attribute}"):
            return (f"{module}.{attribute}", None)
        return (module, attribute)

    def _visit(
        self, module: _Module, statement: ast.AST, found: Reach, params_free: bool
    ) -> list[tuple[str, str | None]]:
        local: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(statement):
            if isinstance(node, ast.Import | ast.ImportFrom) and node is not statement:
                bound = self.index.import_bindings(node, module.package)
                local.update(bound)
        scope = {**module.bindings, **local}
        params_names = set() if params_free else _params_names(statement)
        targets: list[tuple[str, str | None]] = [
            (target, IMPORTED) for target, _ in local.values() if self.index.is_project(target)
        ]
        chained: set[int] = set()
        # `cp = params.discovery.clusters` then `cp.k`: the read is discovery.clusters.k, not all of it.
        aliases: dict[str, list[str]] = {}
        alias_sources: set[int] = set()
        for node in ast.walk(statement):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            pairs = (
                list(zip(target.elts, value.elts, strict=False))
                if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                else [(target, value)]
            )
            for name, source in pairs:
                parts = _chain(source) if isinstance(source, ast.Attribute) else None
                if isinstance(name, ast.Name) and parts and parts[0] in params_names:
                    aliases[name.id] = parts[1:]
                    alias_sources.add(id(source))
        for node in ast.walk(statement):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.strings.add((module.name, node.value))
            if not isinstance(node, ast.Attribute) or id(node) in chained:
                continue
            found.attributes.add(node.attr)
            parts = _chain(node)
            if parts is None:
                continue
            # The inner attributes of this chain are the same expression: visit it once, whole.
            inner = node.value
            while isinstance(inner, ast.Attribute):
                chained.add(id(inner))
                found.attributes.add(inner.attr)
                inner = inner.value
            chained.add(id(inner))
            if parts[0] in params_names and id(node) not in alias_sources:
                found.params_keys.update(_params_keys(parts[1:]))
            elif parts[0] in aliases:
                found.params_keys.update(_params_keys(aliases[parts[0]] + parts[1:]))
            targets.extend(self._chain_targets(module, parts, scope))
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and id(node) not in chained:
                if node.id in params_names and isinstance(node.ctx, ast.Load):
                    continue  # `params` passed on: the callee's own reads count
                if node.id in aliases and isinstance(node.ctx, ast.Load):
                    found.params_keys.update(_params_keys(aliases[node.id]))  # a section passed on whole
                    continue
                targets.extend(self._chain_targets(module, [node.id], scope))
        return targets

    def _chain_targets(
        self, module: _Module, parts: list[str], scope: dict[str, tuple[str, str | None]]
    ) -> list[tuple[str, str | None]]:
        head = parts[0]
        if head in module.defs and head not in scope:
            return [(module.name, head)]
        if head not in scope:
            return []
        target = self._resolve(scope[head])
        if not self.index.is_project(target[0]):
            return []
        if target[1] is not None:
            return [target]
        # A module: walk down submodules, then the first name in the last one is the definition used.
        name = target[0]
        for part in parts[1:]:
            if self.index.file_of(f"{name}.{part}"):
                name = f"{name}.{part}"
                continue
            return [(name, part)]
        return [(name, None)]


def _params_names(statement: ast.AST) -> set[str]:
    """Names that hold the Params object in a definition: arguments called `params` or annotated Params."""
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.arg):
            annotation = node.annotation
            text = ast.unparse(annotation).strip("'\"") if annotation is not None else ""
            # `params: ValidateParams` is one section handed down: the caller's read of it counts.
            if text == "Params" or (node.arg == "params" and not text):
                names.add(node.arg)
    return names


def _params_keys(attributes: list[str]) -> set[str]:
    """`params.train.tuning.cv_folds` read as attributes [train, tuning, cv_folds] -> the keys it reads."""
    path: list[str] = []
    for attribute in attributes:
        if attribute in WHOLE_OBJECT_METHODS or attribute.startswith("__"):
            break
        attribute = PARAMS_ALIASES.get(attribute, attribute) if not path else attribute
        if tuple([*path, attribute]) in PARAMS_PROPERTIES:
            return set(PARAMS_PROPERTIES[(*path, attribute)])
        path.append(attribute)
    return {".".join(path)} if path else {"*"}
