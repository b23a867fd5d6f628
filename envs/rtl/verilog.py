"""Verilog source handling without a simulator: extraction, interfaces, the static safety scan.

Everything here is plain text processing, fast enough to run on every agent action. It is not a
Verilog parser: it finds module declarations and ANSI or non-ANSI port lists, which is what the
format level needs, and leaves the language itself to iverilog and yosys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

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


def module_names(code: str) -> list[str]:
    """The names of every module declared in ``code``, in order (duplicates kept)."""
    return [m.group(1) for m in _MODULE.finditer(strip_comments(code))]


def _balanced(text: str, start: int) -> int:
    """Index just past the parenthesis group opening at ``text[start] == '('``; -1 if unclosed."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _without_ranges(text: str) -> str:
    """``text`` with every ``[...]`` replaced by a space, in one pass (no regex backtracking)."""
    out: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
            out.append(" ")
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _const_width(decl: str) -> int:
    """Bits of the first ``[msb:lsb]`` range in a declaration with integer bounds; 1 without one,
    0 when the bounds are not integers (a parameterized range: the compiler checks the width)."""
    start = decl.find("[")
    if start < 0:
        return 1
    end = decl.find("]", start)
    msb, sep, lsb = decl[start + 1 : end].partition(":") if end > start else ("", "", "")
    try:
        return abs(int(msb.strip()) - int(lsb.strip())) + 1 if sep else 0
    except ValueError:
        return 0


_DIRECTION = re.compile(r"^\s*(input|output|inout)\b")


def _split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _declared_name(decl: str) -> str | None:
    """The name a declaration introduces: its last identifier outside ranges and initializers."""
    decl = _without_ranges(decl.split("=", 1)[0])
    names = _IDENT.findall(decl)
    return names[-1] if names else None


def parse_module(code: str, name: str) -> Module:
    """The interface of module ``name`` in ``code``.

    Raises:
        ToolError: when the module is missing, declared twice, or its port list cannot be read.
    """
    clean = strip_comments(code)
    matches = [m for m in _MODULE.finditer(clean) if m.group(1) == name]
    if not matches:
        declared = [m.group(1) for m in _MODULE.finditer(clean)]
        found = f"; the code declares {declared}" if declared else "; the code declares no module"
        raise ToolError(f"no module named {name!r}{found}. Declare `module {name} (...)`")
    if len(matches) > 1:
        raise ToolError(f"module {name!r} is declared {len(matches)} times; declare it once")
    pos = matches[0].end()
    end = clean.find("endmodule", pos)
    if end < 0:
        raise ToolError(f"module {name!r} has no `endmodule`")
    header = clean[pos:end]
    i = 0
    while i < len(header) and header[i].isspace():
        i += 1
    if header.startswith("#", i):  # a parameter list: #( ... )
        j = header.find("(", i)
        close = _balanced(header, j) if j >= 0 else -1
        if close < 0:
            raise ToolError(f"cannot read the parameter list of module {name!r}")
        i = close
        while i < len(header) and header[i].isspace():
            i += 1
    ports: list[Port] = []
    body = header
    if header.startswith("(", i):
        close = _balanced(header, i)
        if close < 0:
            raise ToolError(f"the port list of module {name!r} is not closed")
        port_list = header[i + 1 : close - 1]
        body = header[close:]
        direction: str | None = None
        width = 0
        declared: list[tuple[str, str | None, int]] = []
        for item in _split_top_level(port_list, ","):
            if not item.strip():
                continue
            m = _DIRECTION.match(item)
            if m:  # `input [7:0] a` starts a declaration that later bare names continue
                direction = m.group(1)
                width = _const_width(item)
            elif "[" in item:
                width = _const_width(item)
            port = _declared_name(item)
            if port is None:
                raise ToolError(f"cannot read port {item.strip()[:60]!r} of module {name!r}")
            declared.append((port, direction, width))
        if all(d is not None for _, d, _ in declared):
            ports = [Port(n, d, w) for n, d, w in declared if d is not None]
        else:  # non-ANSI: `module m (a, b, y);` with `input a;` declarations in the body
            body_dirs = _body_directions(body)
            for port, _, _ in declared:
                if port not in body_dirs:
                    raise ToolError(
                        f"port {port!r} of module {name!r} has no input/output declaration"
                    )
                ports.append(Port(port, *body_dirs[port]))
    return Module(name, tuple(ports))


def _body_directions(body: str) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for stmt in body.split(";"):
        m = _DIRECTION.match(stmt)
        if not m:
            continue
        width = _const_width(stmt)
        decl = _without_ranges(stmt[m.end() :])
        for part in _split_top_level(decl, ","):
            ident = _declared_name(part)
            if ident:
                found[ident] = (m.group(1), width)
    return found


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

    for m in _SYSTEM_NAME.finditer(clean):
        if m.group(0) in NOT_SYNTHESIZABLE_FUNCTIONS:
            findings.append(
                ScanFinding(
                    m.group(0),
                    line_of(m.start()),
                    f"{m.group(0)} exists only in simulation (synthesis and the proof read it as "
                    "an undriven wire); a design may not use it",
                )
            )
        elif m.group(0) not in ALLOWED_SYSTEM_FUNCTIONS:
            findings.append(
                ScanFinding(
                    m.group(0),
                    line_of(m.start()),
                    f"system task {m.group(0)} is not allowed in a design",
                )
            )
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
    case_eq = _CASE_EQUALITY.search(clean)
    if case_eq:
        findings.append(
            ScanFinding(
                case_eq.group(0),
                line_of(case_eq.start()),
                f"case equality ({case_eq.group(0)}) compares x and z, which synthesized hardware "
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
    pos = clean.find("(*")
    while pos >= 0 and clean.startswith("(*)", pos):
        pos = clean.find("(*", pos + 2)
    if pos >= 0:
        findings.append(
            ScanFinding(
                "(* *)",
                line_of(pos),
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
