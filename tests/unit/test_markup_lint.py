"""R3.2: no string built at run time is handed to a widget that parses markup.

Textual parses plain strings given to `Static`, `Label`, `Widget.update`, `notify`,
`DataTable.add_row`/`update_cell`, `Tree.add`/`add_leaf` and `Log.write*` as markup, so
an f-string, `%`-format, `.format()` or `+` concatenation there lets a trace string such as
`[@click=app.quit]` or `[/]` run an action or crash the app (RELIABILITY §3). Templates with
untrusted parts use `Content.from_markup("... $name", name=value)` (or `panels.text.template`),
whose markup argument must itself be a literal. Static text is fine; `notify(..., markup=False)`
is fine. `markup=True` is allowed nowhere.

The checker walks the AST of panels/*.py and console/app.py; its own tests below show that it
catches each form, so an empty result means something.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = sorted((ROOT / "panels").glob("*.py")) + [ROOT / "console" / "app.py"]
NO_MARKUP_TRUE = ("panels", "console", "connectors", "themes")

CONTENT_FIRST_ARG = {"Static", "Label", "update", "notify", "write", "write_line", "add_leaf",
                     "add"}
"""Calls whose first argument (the content) is parsed as markup when it is a str."""
EVERY_ARG = {"add_row", "write_lines"}
"""Calls each of whose positional arguments is parsed as markup (DataTable cells, Log lines)."""
NTH_ARG = {"update_cell": 2, "update_cell_at": 1}
"""DataTable calls whose value argument is parsed as markup."""
CONTENT_KEYWORDS = {"content", "renderable", "message", "label", "value"}
TEMPLATES = {"from_markup", "template"}
"""`Content.from_markup(markup, **vars)`, `Text.from_markup`, `panels.text.template`: the
markup (first argument) must be a literal; untrusted values go in as variables."""


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    call: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}(...) gets {self.why}"


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_str(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def built_string(node: ast.expr) -> str | None:
    """What kind of run-time-built string `node` is, or None if it is not one."""
    if isinstance(node, ast.JoinedStr):
        return "an f-string" if any(isinstance(v, ast.FormattedValue) for v in node.values) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and (
            _is_str(node.left) or built_string(node.left)):
        return "a %-formatted string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = (node.left, node.right)
        if any(_is_str(s) or built_string(s) for s in sides):
            return "a + concatenated string"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
            node.func.attr == "format"):
        return "a .format() string"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
            node.func.attr == "join" and _is_str(node.func.value)):
        return "a str.join() string"
    if isinstance(node, ast.IfExp):
        return built_string(node.body) or built_string(node.orelse)
    return None


def _markup_off(call: ast.Call) -> bool:
    return any(k.arg == "markup" and isinstance(k.value, ast.Constant) and k.value.value is False
               for k in call.keywords)


def _forwarded(source: ast.Module) -> set[int]:
    """ids of the parameters of `template` helpers: forwarding them to from_markup is the helper."""
    params: set[int] = set()
    for fn in ast.walk(source):
        if isinstance(fn, ast.FunctionDef) and fn.name in TEMPLATES:
            names = {a.arg for a in fn.args.args}
            params |= {id(n) for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in names}
    return params


def check_source(source: str, path: str) -> list[Violation]:
    """Every call in `source` that hands a built string to a markup-parsing widget API."""
    found: list[Violation] = []
    tree = ast.parse(source, path)
    forwarded = _forwarded(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        for kw in node.keywords:
            if kw.arg == "markup" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                found.append(Violation(path, node.lineno, name or "?", "markup=True"))
        if name is None:
            continue
        args: list[ast.expr] = []
        if name in TEMPLATES:
            if node.args and not _is_str(node.args[0]) and id(node.args[0]) not in forwarded:
                found.append(Violation(path, node.lineno, name,
                                       built_string(node.args[0]) or "markup that is not a literal"))
            continue
        if name in CONTENT_FIRST_ARG and not (name == "notify" and _markup_off(node)):
            args = node.args[:1] + [k.value for k in node.keywords if k.arg in CONTENT_KEYWORDS]
        elif name in EVERY_ARG:
            args = [a.value if isinstance(a, ast.Starred) else a for a in node.args]
        elif name in NTH_ARG:
            args = node.args[NTH_ARG[name]:NTH_ARG[name] + 1] + [
                k.value for k in node.keywords if k.arg == "value"]
        for arg in args:
            why = built_string(arg)
            if why is None and isinstance(arg, ast.ListComp | ast.GeneratorExp | ast.Tuple | ast.List):
                elements = [arg.elt] if isinstance(arg, ast.ListComp | ast.GeneratorExp) else arg.elts
                why = next((w for e in elements if (w := built_string(e))), None)
            if why is not None:
                found.append(Violation(path, getattr(arg, "lineno", node.lineno), name, why))
    return found


def check_file(path: Path) -> list[Violation]:
    return check_source(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


# ---------------------------------------------------------------------------
# The project
# ---------------------------------------------------------------------------


def test_the_checked_files_exist() -> None:
    names = {p.name for p in CHECKED}
    assert {"app.py", "overview.py", "traces_screen.py", "text.py", "status_line.py"} <= names


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_built_string_reaches_a_markup_parsing_widget(path: Path) -> None:
    violations = check_file(path)
    assert not violations, "untrusted text must go through panels.text (Content/Text), not markup:\n" + (
        "\n".join(map(str, violations)))


def test_markup_true_is_passed_nowhere() -> None:
    found = []
    for folder in NO_MARKUP_TRUE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += [v for v in check_file(path) if v.why == "markup=True"]
            source = path.read_text(encoding="utf-8")
            found += [Violation(str(path.relative_to(ROOT)), n, "?", "markup=True (text)")
                      for n, line in enumerate(source.splitlines(), 1)
                      if "markup=True" in line.replace(" ", "") and not line.lstrip().startswith("#")]
    assert not found, "\n".join(sorted({str(v) for v in found}))


# ---------------------------------------------------------------------------
# The checker itself: each forbidden form is caught, each safe form is not
# ---------------------------------------------------------------------------

BAD = {
    'Static(f"tenant {t}")': "an f-string",
    'Label("model " + model)': "a + concatenated string",
    'w.update("%s failed" % name)': "a %-formatted string",
    'w.update("{} failed".format(name))': "a .format() string",
    'self.notify(f"copied {x}")': "an f-string",
    'self.notify("x", markup=True)': "markup=True",
    'table.add_row("ok", f"{tenant}", key=k)': "an f-string",
    'table.add_row(*[f"{c}" for c in cells])': "an f-string",
    'table.update_cell(k, c, "x" + v)': "a + concatenated string",
    'log.write_line(f"{line}")': "an f-string",
    'log.write(prefix + "!")': "a + concatenated string",
    'log.write_lines([f"{a}", "b"])': "an f-string",
    'Content.from_markup(f"[b]{name}[/b]")': "an f-string",
    'Text.from_markup("[b]" + name)': "a + concatenated string",
    'template(markup_from_data, v=x)': "markup that is not a literal",
    'def show(markup):\n    return Content.from_markup(markup)': "markup that is not a literal",
    'tree.root.add_leaf(f"{span.name}")': "an f-string",
    'node.add(label=f"{name}", data=1)': "an f-string",
    'Static(content=f"{x}")': "an f-string",
    'Static(f"{a}" if ok else "none")': "an f-string",
    'Static(", ".join(names))': "a str.join() string",
}
GOOD = (
    'Static("SLOs", classes="section-title")',
    'Static(safe(text))',
    'Label(Content(f"data {clock}"))',
    'w.update(Text(f"Spend {usd(x)}"))',
    'w.update(Content("trace ") + safe_line(trace_id, 40))',
    'self.notify(f"unknown command {cell(text, 40)!r}", markup=False)',
    'table.add_row(*cells, key=key)',
    'table.add_row(Text(f":{name}"), Text(help_text + alias))',
    'Content.from_markup("[b]llmdeck[/b] › $title", title=self.title)',
    'template("[b]$k[/b]", k=value)',
    'flt.model_copy(update={dim: value})',
    'seen.add(ident)',
    'def template(markup, **values):\n    return Content.from_markup(markup, **values)',
)


@pytest.mark.parametrize("snippet", list(BAD))
def test_the_checker_catches(snippet: str) -> None:
    found = check_source(snippet, "<snippet>")
    assert [v.why for v in found] == [BAD[snippet]], found
    assert str(found[0]).startswith("<snippet>:")


@pytest.mark.parametrize("snippet", GOOD)
def test_the_checker_lets_safe_forms_through(snippet: str) -> None:
    assert check_source(snippet, "<snippet>") == []
