"""Verilog source handling without a simulator: extraction, interfaces, the static safety scan.

Interfaces come from a real front-end: slang (pyslang) parses and elaborates the design with its
own macros and default parameter values, so an `` `ifdef `` inside a port list, a parameterised
range (``input [WIDTH-1:0] a``), a packed 2-D port (``input [3:0][7:0] a``) and a port list that
continues a declaration (``input [7:0] a, b, input cin``) each get the width the compilers give
them. The construct scan reads slang's tokens (a ``$`` inside an identifier such as ``a$b`` or an
escaped one is not a system task; an attribute is an attribute node, not the characters ``(*``),
and the preprocessor-level checks (directives, conditional compilation, token pasting, pragmas in
comments) read the source with comments and strings blanked, as before. Slang runs in-process
on a copy of the source whose `` `include `` directives and token pastes are blanked (the scan
refuses both), after a bound on how far the macros can expand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hiergym.errors import ToolError

MAX_SOURCE_CHARS = 64_000
"""Agents are capped by the action size (32k characters) first; direct API users get more room."""

_FENCE_LANGUAGES = ("", "verilog", "systemverilog", "sv", "v")
_SPECIAL = re.compile(r'[/"]')
_MODULE = re.compile(r"\b(?:module|macromodule)\s+(\\\S+|[A-Za-z_][\w$]*)")
_IDENT = re.compile(r"[A-Za-z_][\w$]*")
_SYSTEM_NAME = re.compile(r"\$[A-Za-z_][\w$]*")
_DIRECTIVE = re.compile(r"(?<!`)`\s*([A-Za-z_]\w*)")

ALLOWED_SYSTEM_FUNCTIONS = frozenset(
    {
        "$signed",
        "$unsigned",
        "$clog2",
        "$bits",
        "$countones",
        "$onehot",
        "$onehot0",
        "$display",
        "$write",
        "$strobe",
        "$monitor",
        "$error",
        "$warning",
        "$info",
    }
)
"""System functions a design may use: pure functions and console output (which no result reads).
Anything else (``$finish``, ``$fopen``, ``$readmemh``, ``$system``, ``$dumpfile``, VPI calls) can end
or steer the simulation or touch files, so the syntax level refuses it as unsupported. Functions
that exist only in simulation (``$time``, ``$stime``, ``$realtime``: yosys reads them as undriven
wires; ``$isunknown``: hardware has no x) are refused too: the simulated, the proven and the
synthesised circuit must be one circuit."""

NOT_SYNTHESIZABLE_FUNCTIONS = frozenset({"$time", "$stime", "$realtime", "$isunknown"})

ALLOWED_DIRECTIVES = frozenset(
    {
        "timescale",
        "default_nettype",
        "define",
        "undef",
        "ifdef",
        "ifndef",
        "elsif",
        "else",
        "endif",
        "resetall",
        "celldefine",
        "endcelldefine",
    }
)
"""Compiler directives a design may use; ``include`` would read a file outside the temp dir."""


@dataclass(frozen=True)
class Port:
    """One port of a module interface; ``width`` is 0 when the declaration has no constant range."""

    name: str
    direction: str  # "input" | "output" | "inout"
    width: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "direction": self.direction, "width": self.width}


@dataclass(frozen=True)
class Module:
    name: str
    ports: tuple[Port, ...]
    parameters: tuple[tuple[str, str], ...] = ()
    """``(name, default value)`` of every parameter, as elaborated."""


def extract_code(text: str) -> str:
    """The Verilog in a submission: the fenced code blocks of a markdown answer, else all of it.

    One linear pass (agent text can hold thousands of unclosed fences; a regex would backtrack).
    """
    blocks: list[str] = []
    pos = 0
    while True:
        start = text.find("```", pos)
        newline = text.find("\n", start) if start >= 0 else -1
        end = text.find("```", newline + 1) if newline >= 0 else -1
        if end < 0:
            rest = text[newline + 1 :] if newline >= 0 else ""
            if start >= 0 and not rest.strip():
                if not blocks and not text[start + 3 :].strip():
                    blocks.append(text[:start])  # a closing fence with no opening one
            elif newline >= 0 and text[start + 3 : newline].strip().lower() in _FENCE_LANGUAGES:
                blocks.append(rest)  # an answer cut off inside its last block
            break
        if text[start + 3 : newline].strip().lower() in _FENCE_LANGUAGES:
            blocks.append(text[newline + 1 : end])
        pos = end + 3
    code = "\n".join(blocks) if blocks else text
    return code.strip() + "\n"


def _literals(code: str) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` of every comment (``"comment"``) and string literal (``"string"``) in
    ``code``, in order, in one linear pass. An unclosed comment runs to the end."""
    i, n = 0, len(code)
    while i < n:
        m = _SPECIAL.search(code, i)
        if m is None:
            return
        i = m.start()
        if code.startswith("//", i):
            end = code.find("\n", i)
            end = n if end < 0 else end
            yield "comment", i, end
        elif code.startswith("/*", i):
            end = code.find("*/", i + 2)
            end = n if end < 0 else end + 2
            yield "comment", i, end
        elif code[i] == '"':
            end = i + 1
            while end < n and code[end] not in '"\n':
                end += 2 if code[end] == "\\" else 1
            end = min(end + 1, n) if end < n and code[end] == '"' else min(end, n)
            yield "string", i, end
        else:  # a lone slash: division
            end = i + 1
        i = end


def strip_comments(code: str) -> str:
    """Comments and string literals blanked, in one linear pass: line breaks stay (so line numbers
    hold) and strings keep their quotes, emptied. An unclosed comment runs to the end."""
    out: list[str] = []
    pos = 0
    for kind, start, end in _literals(code):
        out.append(code[pos:start])
        if kind == "comment":
            out.append("".join("\n" if c == "\n" else " " for c in code[start:end]))
        else:
            out.append('""')
        pos = end
    out.append(code[pos:])
    return "".join(out)


def comments(code: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every comment in ``code`` (strings are not comments)."""
    found: list[tuple[int, str]] = []
    line, pos = 1, 0
    for kind, start, end in _literals(code):
        if kind == "comment":
            line += code.count("\n", pos, start)
            pos = start
            found.append((line, code[start:end]))
    return found


# --------------------------------------------------------------------------------------------
# The slang front-end

MAX_MACRO_EXPANSION = 200_000
"""Tokens the macros of a design may expand to, at most (a chain of macros that each use the
previous one twice doubles per line: 30 lines would expand to a billion tokens in-process)."""

_DEFINE = re.compile(r"(?<!`)`\s*define[ \t]+([A-Za-z_]\w*)((?:\\\n|[^\n])*)")
_MACRO_USE = re.compile(r"(?<!`)`\s*([A-Za-z_]\w*)")
_INCLUDE = re.compile(r"`\s*include\b")


def _macro_expansion_bound(clean: str) -> int:
    """An upper bound on the tokens the design's macro uses expand to (0 without macros)."""
    bodies = {m.group(1): m.group(2) for m in _DEFINE.finditer(clean)}
    if not bodies:
        return 0
    sizes: dict[str, int] = {}

    def size(name: str, stack: frozenset[str]) -> int:
        if name in sizes:
            return sizes[name]
        if name in stack:  # recursion: slang stops it; count it once
            return 1
        body = bodies[name]
        total = len(body.split()) + 1
        for use in _MACRO_USE.finditer(body):
            if use.group(1) in bodies:
                total += size(use.group(1), stack | {name})
                if total > MAX_MACRO_EXPANSION:
                    break
        sizes[name] = min(total, MAX_MACRO_EXPANSION + 1)
        return sizes[name]

    bound = 0
    for use in _MACRO_USE.finditer(clean):
        if use.group(1) in bodies:
            bound += size(use.group(1), frozenset())
            if bound > MAX_MACRO_EXPANSION:
                break
    return bound


@dataclass
class _Parsed:
    """A slang syntax tree of one source (kept alive: its tokens point into it)."""

    tree: Any
    modules: list[tuple[str, Any]]  # (name, ModuleDeclarationSyntax) in source order


def _slang_text(code: str) -> str:
    """The source slang reads: `` `include `` blanked (slang would read the file) and token
    pastes blanked (no directive can be assembled); the scan refuses both in the original."""
    text = _INCLUDE.sub(lambda m: " " * len(m.group(0)), code)
    return text.replace("``", "  ")


@functools.lru_cache(maxsize=256)
def _parse(code: str) -> _Parsed:
    from pyslang import syntax

    check_size(code)
    bound = _macro_expansion_bound(strip_comments(code))
    if bound > MAX_MACRO_EXPANSION:
        raise ToolError(
            f"the design's macros expand to more than {MAX_MACRO_EXPANSION:,} tokens; "
            "write the logic out instead of nesting macros"
        )
    try:
        tree = syntax.SyntaxTree.fromText(_slang_text(code), "design.sv")
    except RuntimeError:  # slang's guard against nesting deeper than its stack
        raise ToolError(
            "the design nests brackets or expressions too deeply to parse; simplify it"
        ) from None
    modules: list[tuple[str, Any]] = []

    containers = (
        syntax.SyntaxKind.CompilationUnit,
        syntax.SyntaxKind.InterfaceDeclaration,
        syntax.SyntaxKind.ProgramDeclaration,
        syntax.SyntaxKind.PackageDeclaration,
    )

    def collect(node: Any) -> None:
        if node.kind == syntax.SyntaxKind.ModuleDeclaration:
            modules.append((node.header.name.valueText, node))
        if node.kind == syntax.SyntaxKind.ModuleDeclaration or node.kind in containers:
            for member in node.members or []:  # nested module declarations too
                collect(member)

    collect(tree.root)
    return _Parsed(tree, modules)


def _tokens(node: Any) -> Iterator[tuple[Any, bool]]:
    """Every token under ``node`` in order, with whether it is inside an attribute instance."""
    from pyslang import parsing, syntax

    attr = syntax.SyntaxKind.AttributeInstance
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        item, in_attr = stack.pop()
        if isinstance(item, parsing.Token):
            yield item, in_attr
            continue
        if item is None:
            continue
        inside = in_attr or getattr(item, "kind", None) == attr
        children = list(item)
        stack.extend((c, inside) for c in reversed(children))


def module_names(code: str) -> list[str]:
    """The names of every module declared in ``code``, in order (duplicates kept)."""
    try:
        return [name for name, _ in _parse(code).modules]
    except ToolError:
        return [m.group(1) for m in _MODULE.finditer(strip_comments(code))]


_DIRECTIONS = {"In": "input", "Out": "output", "InOut": "inout", "Ref": "inout"}


@functools.lru_cache(maxsize=256)
def _elaborate(code: str, name: str) -> Module:
    from pyslang import Bag, ast

    parsed = _parse(code)
    options = ast.CompilationOptions()
    options.topModules = {name}
    compilation = ast.Compilation(Bag([options]))
    compilation.addSyntaxTree(parsed.tree)
    top = next((i for i in compilation.getRoot().topInstances if i.name == name), None)
    if top is None:
        raise ToolError(f"cannot elaborate module {name!r}")
    for diag in compilation.getAllDiagnostics():
        if str(diag.code) == "DiagCode(MissingPortIODeclaration)":
            port = str(diag.args[0]) if diag.args else "?"
            raise ToolError(f"port {port!r} of module {name!r} has no input/output declaration")
    ports: list[Port] = []
    for symbol in top.body.portList:
        kind = type(symbol).__name__
        if kind != "PortSymbol":
            what = "an interface port" if kind == "InterfacePortSymbol" else "a port expression"
            raise ToolError(
                f"port {symbol.name or '?'!r} of module {name!r} is {what}; declare plain "
                "input/output ports"
            )
        if not symbol.name:
            raise ToolError(f"module {name!r} has an unnamed port; name every port")
        direction = _DIRECTIONS.get(symbol.direction.name)
        if direction is None:
            raise ToolError(f"port {symbol.name!r} of module {name!r} has no direction")
        t = symbol.type
        width = int(t.bitWidth) if t.isIntegral and not t.isError else 0
        ports.append(Port(symbol.name, direction, width))
    params = []
    for prm in top.body.parameters:
        value = getattr(prm, "value", None)
        params.append((prm.name, str(value) if value is not None else ""))
    return Module(name, tuple(ports), tuple(params))


def parse_module(code: str, name: str) -> Module:
    """The interface of module ``name`` in ``code``, as slang elaborates it with the design's
    own macros and its parameters' default values.

    Raises:
        ToolError: when the module is missing, declared twice, or its port list cannot be read.
    """
    declared = [n for n, _ in _parse(code).modules]
    count = declared.count(name)
    if not count:
        found = f"; the code declares {declared}" if declared else "; the code declares no module"
        raise ToolError(f"no module named {name!r}{found}. Declare `module {name} (...)`")
    if count > 1:
        raise ToolError(f"module {name!r} is declared {count} times; declare it once")
    node = next(n for m, n in _parse(code).modules if m == name)
    if node.endmodule.isMissing:
        raise ToolError(f"module {name!r} has no `endmodule`")
    return _elaborate(code, name)


def interface_problems(module: Module, required: tuple[Port, ...]) -> list[str]:
    """How ``module``'s ports differ from the required interface (names, directions, widths)."""
    problems: list[str] = []
    have = {p.name: p for p in module.ports}
    for p in required:
        got = have.get(p.name)
        if got is None:
            problems.append(f"missing {p.direction} port {p.name!r} ({p.width} bits)")
        elif got.direction != p.direction:
            problems.append(f"port {p.name!r} must be an {p.direction}, not an {got.direction}")
        elif got.width and got.width != p.width:
            problems.append(f"port {p.name!r} must be {p.width} bits wide, not {got.width}")
    wanted = {p.name for p in required}
    problems += [f"unexpected port {p.name!r}" for p in module.ports if p.name not in wanted]
    return problems


@dataclass(frozen=True)
class ScanFinding:
    """A construct the sandbox refuses, with where it is."""

    construct: str
    line: int
    message: str


def scan_forbidden(code: str) -> list[ScanFinding]:
    """Constructs a design may not use: unlisted system tasks, file-reading directives, macro pastes.

    The scan runs on the source with comments and strings blanked, so a mention in a comment is
    harmless, and it refuses token pasting so a macro cannot assemble a refused name.
    """
    clean = strip_comments(code)
    findings: list[ScanFinding] = []

    def line_of(pos: int) -> int:
        return clean.count("\n", 0, pos) + 1

    for construct, pos_or_line, kind in _token_constructs(code, clean):
        line = pos_or_line if kind != "pos" else line_of(pos_or_line)
        if construct in NOT_SYNTHESIZABLE_FUNCTIONS:
            message = (
                f"{construct} exists only in simulation (synthesis and the proof read it as "
                "an undriven wire); a design may not use it"
            )
        else:
            message = f"system task {construct} is not allowed in a design"
        findings.append(ScanFinding(construct, line, message))
    macros = {d.group(1) for d in re.finditer(r"`\s*define\s+([A-Za-z_]\w*)", clean)}
    for m in _DIRECTIVE.finditer(clean):
        word = m.group(1)
        if word not in ALLOWED_DIRECTIVES and word not in macros:
            findings.append(
                ScanFinding(
                    f"`{word}",
                    line_of(m.start()),
                    f"compiler directive `{word} is not allowed in a design",
                )
            )
    # A macro the design does not define itself is one a tool defines (SYNTHESIS and YOSYS in
    # yosys, __ICARUS__ in iverilog): testing it would let simulation and synthesis see different
    # designs, a cheap one proven only to the bounded depth and a correct one simulated.
    for m in re.finditer(r"(?<!`)`\s*(?:ifdef|ifndef|elsif)\s+([A-Za-z_]\w*)", clean):
        if m.group(1) not in macros:
            findings.append(
                ScanFinding(
                    f"`ifdef {m.group(1)}",
                    line_of(m.start()),
                    f"conditional compilation on {m.group(1)}, a macro the design does not "
                    "define, is not allowed (simulation and synthesis must see one design)",
                )
            )
    # Case equality sees x and z, which hardware does not have: `u !== 1'b0 && u !== 1'b1` is true
    # in simulation for an x or z net and a constant in synthesis, which can pick either branch.
    for construct, line in _token_extras(code, clean, "case_equality")[:1]:
        findings.append(
            ScanFinding(
                construct,
                line,
                f"case equality ({construct}) compares x and z, which synthesized hardware "
                "does not have; use == or !=",
            )
        )
    if "``" in clean:
        pos = clean.index("``")
        findings.append(
            ScanFinding("``", line_of(pos), "macro token pasting (``) is not allowed in a design")
        )
    # Attributes steer yosys (blackbox, whitebox, keep_hierarchy, full_case, nosync, init, ...)
    # and iverilog ignores them: a `(* whitebox *)` helper was simulated in full yet synthesized
    # as an empty box of area 0. `@(*)` is an event control, not an attribute.
    for _, line in _token_extras(code, clean, "attribute")[:1]:
        findings.append(
            ScanFinding(
                "(* *)",
                line,
                "attributes (* ... *) are not allowed in a design (synthesis acts on them and "
                "simulation ignores them; they must see one design)",
            )
        )
    # yosys obeys `synopsys translate_off` (skipping code) and `full_case` / `parallel_case`
    # comments (changing case semantics); iverilog ignores them. A design could show the simulator
    # a correct circuit and the prover and synthesis a cheaper one that is right only to the proof
    # depth, the same split that tool-macro conditional compilation allows.
    for line, text in comments(code):
        pragma = _PRAGMA.search(text)
        if pragma:
            findings.append(
                ScanFinding(
                    pragma.group(0),
                    line,
                    f"the synthesis pragma {pragma.group(0)!r} in a comment is not allowed "
                    "(synthesis obeys it and simulation does not; they must see one design)",
                )
            )
    return findings[:20]


def _token_constructs(code: str, clean: str) -> list[tuple[str, int, str]]:
    """``(name, line, "line")`` of every system name outside the allowed set, from slang's tokens
    (the expansion of every macro use included); ``(name, offset, "pos")`` from the text when
    slang cannot read the source."""
    scanned = _scan_tokens(code)
    if scanned is None:
        return [
            (m.group(0), m.start(), "pos")
            for m in _SYSTEM_NAME.finditer(clean)
            if m.group(0) not in ALLOWED_SYSTEM_FUNCTIONS
        ]
    return [(name, line, "line") for kind, name, line in scanned if kind == "system"]


def _token_extras(code: str, clean: str, wanted: str) -> list[tuple[str, int]]:
    """``(construct, line)`` of every case equality or attribute, from slang's tokens, or from
    the text when slang cannot read the source."""
    scanned = _scan_tokens(code)
    if scanned is not None:
        return [(name, line) for kind, name, line in scanned if kind == wanted]
    found: list[tuple[str, int]] = []
    if wanted == "case_equality":
        m = _CASE_EQUALITY.search(clean)
        if m:
            found.append((m.group(0), clean.count("\n", 0, m.start()) + 1))
    else:
        pos = clean.find("(*")
        while pos >= 0 and clean.startswith("(*)", pos):
            pos = clean.find("(*", pos + 2)
        if pos >= 0:
            found.append(("(* *)", clean.count("\n", 0, pos) + 1))
    return found


@functools.lru_cache(maxsize=64)
def _scan_tokens(code: str) -> tuple[tuple[str, str, int], ...] | None:
    """``(kind, construct, line)`` for every refused token: unlisted system names
    (``"system"``), ``===`` / ``!==`` (``"case_equality"``) and attribute instances
    (``"attribute"``), read from slang's tokens, macro bodies and macro expansions included.
    ``None`` when slang cannot read the source."""
    from pyslang import parsing

    try:
        parsed = _parse(code)
    except ToolError:
        return None
    sm = parsed.tree.sourceManager
    found: list[tuple[str, str, int]] = []

    def line(token: Any) -> int:
        loc = token.location
        return int(sm.getLineNumber(sm.getFullyOriginalLoc(loc)))

    def visit(token: Any, in_attr: bool) -> None:
        for trivia in token.trivia:
            if trivia.kind == parsing.TriviaKind.Directive:
                directive = trivia.syntax()
                if directive is not None:
                    for inner, inner_attr in _tokens(directive):
                        visit(inner, inner_attr)
        kind = token.kind
        if kind == parsing.TokenKind.SystemIdentifier:
            name = token.valueText
            if name not in ALLOWED_SYSTEM_FUNCTIONS:
                found.append(("system", name, line(token)))
        elif kind in (parsing.TokenKind.TripleEquals, parsing.TokenKind.ExclamationDoubleEquals):
            found.append(("case_equality", token.rawText, line(token)))
        elif in_attr and kind == parsing.TokenKind.OpenParenthesis:
            found.append(("attribute", "(* *)", line(token)))

    for token, in_attr in _tokens(parsed.tree.root):
        visit(token, in_attr)
    return tuple(found)


_CASE_EQUALITY = re.compile(r"===|!==")
_PRAGMA = re.compile(r"\btranslate_o(?:ff|n)\b|\b(?:full|parallel)_case\b", re.IGNORECASE)


def rename_modules(code: str, renames: dict[str, str]) -> str:
    """``code`` with every whole-word occurrence of each module name replaced (declarations and
    instantiations alike); used to give a reference a name no submission can know."""
    if not renames:
        return code
    pattern = re.compile(r"(?<![\w$\\])(" + "|".join(map(re.escape, renames)) + r")(?![\w$])")
    return pattern.sub(lambda m: renames[m.group(1)], code)


def check_size(code: str) -> None:
    """Raise a ToolError for a source too long to accept or one no file can hold."""
    if len(code) > MAX_SOURCE_CHARS:
        raise ToolError(
            f"the design is {len(code):,} characters; the cap is {MAX_SOURCE_CHARS:,}. "
            "Send one module and its helpers, without long comments"
        )
    if "\x00" in code:  # iverilog stops reading there, with a message about something else
        raise ToolError(
            f"the design contains a NUL character (at {code.index(chr(0))}); send plain text"
        )
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate, which JSON can carry ("\ud800")
        raise ToolError(
            f"the design is not valid Unicode (character {e.start}: {code[e.start]!r}); "
            "send plain text"
        ) from None


def instantiated_modules(code: str) -> list[str]:
    """The module (or primitive) names ``code`` instantiates, in order, duplicates removed."""
    from pyslang import syntax

    try:
        parsed = _parse(code)
    except ToolError:
        return []
    found: dict[str, None] = {}

    def visit(node: Any) -> None:
        if node.kind == syntax.SyntaxKind.HierarchyInstantiation:
            found[node.type.valueText] = None

    parsed.tree.root.visit(visit)
    return list(found)


def edge_signals(code: str) -> list[str]:
    """The names that follow ``posedge`` / ``negedge`` in ``code``'s event controls, in order,
    duplicates removed (the clocks, and the asynchronous resets, of its always blocks)."""
    from pyslang import parsing

    try:
        parsed = _parse(code)
    except ToolError:
        return []
    found: dict[str, None] = {}
    edge = False
    for token, _ in _tokens(parsed.tree.root):
        if edge and token.kind == parsing.TokenKind.Identifier:
            found[token.valueText] = None
        edge = token.kind in (parsing.TokenKind.PosEdgeKeyword, parsing.TokenKind.NegEdgeKeyword)
    return list(found)
