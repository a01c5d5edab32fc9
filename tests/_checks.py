"""Helpers that keep the experiments' checks honest (issue 13: checks that measure).

* :func:`recipe_checks` lists every ``ctx.check(...)`` call of a recipe module with the
  function calls its measured and theory values come from (a small static data-flow
  over the recipe's own assignments, table columns followed by their names), so a test
  can fail on a check whose two sides come from one function call unless the check says
  ``identity=True``.
* :func:`assert_checks_measure` reads a finished run's ``checks`` table and fails on a
  check that agrees with its non-integer theory to machine precision (two independent
  routes never do) unless it is marked an identity.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from pathlib import Path

#: Calls that only reshape, reduce or convert: a value passes through them unchanged in kind.
TRANSPARENT = {
    "abs", "agg", "all", "any", "assign", "astype", "bool", "clip", "concat", "copy",
    "DataFrame", "dropna", "fillna", "first", "float", "get", "grid", "groupby", "idxmax",
    "idxmin", "iloc", "int", "isin", "item", "itertuples", "iterrows", "list", "loc",
    "max", "mean", "median", "merge", "min", "numpy", "reset_index", "round",
    "sort_values", "std", "str", "sum", "sweep", "table", "to_dict", "to_numpy", "tolist",
    "tuple", "values",
}  # fmt: skip

#: Calls that give the size of a collection: structure, not a measured value.
SIZES = {"len", "nunique"}


@dataclass
class CheckCall:
    """One ``ctx.check`` call: where, its name (source text), the producing calls of each side."""

    line: int
    name: str
    measured: set[str]
    theory: set[str]
    identity: bool

    @property
    def shared(self) -> set[str]:
        """Function calls both the measured and the theory value come from."""
        return self.measured & self.theory


@dataclass
class _Flow:
    """Assignments of a module: local names per function, table columns / dict keys."""

    names: dict[int, dict[str, list[tuple[int, ast.AST]]]] = field(default_factory=dict)
    keys: dict[str, list[tuple[ast.AST, int]]] = field(default_factory=dict)


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _targets(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _targets(t)]
    if isinstance(target, ast.Starred):
        return _targets(target.value)
    return []


def _key(node: ast.AST) -> str | None:
    """The column / key an expression reads: ``r.t_c``, ``row["K"]`` (else None)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def _collect(tree: ast.Module) -> tuple[_Flow, dict[int, int]]:
    flow, scope_of = _Flow(), {}
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))]
    for scope in scopes:
        names = flow.names.setdefault(id(scope), {})
        for node in ast.walk(scope):
            scope_of.setdefault(id(node), id(scope))
            pairs: list[tuple[ast.AST, ast.AST]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value:
                pairs = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.comprehension)):
                pairs = [(node.target, node.iter)]
            for target, value in pairs:
                if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                    if len(target.elts) == len(value.elts):  # a, b = x, y: pair them
                        pairs += list(zip(target.elts, value.elts, strict=True))
                        continue
                for name in _targets(target):
                    names.setdefault(name, []).append((getattr(value, "lineno", 0), value))
                if (k := _key(target)) is not None and isinstance(target, ast.Subscript):
                    flow.keys.setdefault(k, []).append((value, id(scope)))
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant):
                        flow.keys.setdefault(str(k.value), []).append((v, id(scope)))
            if isinstance(node, ast.Call) and _call_name(node) in ("assign", "agg", "dict"):
                for kw in node.keywords:
                    if kw.arg:
                        flow.keys.setdefault(kw.arg, []).append((kw.value, id(scope)))
    return flow, scope_of


def _producers(node: ast.AST, scope: int, flow: _Flow, seen: set[tuple[int, int]]) -> set[str]:
    """The non-transparent calls ``node`` comes from (their source text)."""
    if (id(node), scope) in seen or len(seen) > 2000:
        return set()
    seen.add((id(node), scope))
    out: set[str] = set()
    if isinstance(node, ast.Call):
        if _call_name(node) in SIZES:
            return set()
        if _call_name(node) not in TRANSPARENT:
            return {ast.unparse(node)}
        parts = [*node.args, *(kw.value for kw in node.keywords)]
        if isinstance(node.func, ast.Attribute):
            parts.append(node.func.value)
        for p in parts:
            out |= _producers(p, scope, flow, seen)
        return out
    if isinstance(node, ast.Name):
        defs = flow.names.get(scope, {}).get(node.id, [])
        before = [d for d in defs if d[0] < getattr(node, "lineno", 0)]
        for _, value in before[-1:] or defs:  # the latest assignment above the use
            out |= _producers(value, scope, flow, seen)
        return out
    if (k := _key(node)) is not None and k in flow.keys:
        for value, where in flow.keys[k]:
            out |= _producers(value, where, flow, seen)
        return out
    for child in ast.iter_child_nodes(node):
        out |= _producers(child, scope, flow, seen)
    return out


def recipe_checks(path: Path) -> list[CheckCall]:
    """Every ``ctx.check(name, measured, theory, tolerance, ...)`` call in a recipe file."""
    tree = ast.parse(Path(path).read_text())
    flow, scope_of = _collect(tree)
    found = []
    for node in ast.walk(tree):
        f = getattr(node, "func", None)
        if not (isinstance(f, ast.Attribute) and f.attr == "check" and isinstance(node, ast.Call)):
            continue
        if not (isinstance(f.value, ast.Name) and f.value.id == "ctx") or len(node.args) < 3:
            continue
        scope = scope_of[id(node)]
        ident = any(
            kw.arg == "identity" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in node.keywords
        )
        sides = [_producers(node.args[i], scope, flow, set()) for i in (1, 2)]
        found.append(CheckCall(node.lineno, ast.unparse(node.args[0]), *sides, ident))
    return found


def assert_checks_measure(folder) -> None:
    """Fail on a check of a finished run that agrees with a non-integer theory to 1e-9
    (relative) without being marked ``identity``: independent routes never agree so well."""
    checks = folder.read_table("checks")
    for c in checks.itertuples():
        if bool(c.identity) or not math.isfinite(c.theory) or float(c.theory).is_integer():
            continue
        gap = abs(c.measured - c.theory)
        assert gap > 1e-9 * max(1.0, abs(c.theory)), (
            f"check {c.name!r}: measured {c.measured!r} equals theory {c.theory!r} to machine "
            "precision: one computation by two routes? measure it otherwise or mark identity=True"
        )
