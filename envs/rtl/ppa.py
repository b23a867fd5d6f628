"""PPA measurement that does not depend on how a circuit is written.

ABC's mapping is heuristic and yosys's word-level passes are order-dependent: the same circuit
handed over in another order (a helper module flattened into the top, nets with other names, an
output inverted twice, the operands of ``a & b`` swapped) comes back as another netlist, so a
design's area and delay were a noisy sample rather than a property of its circuit (the reference
of ``rtl-uart_tx-cpb4``: 142 cells, 187 ps; the same reference inside a wrapper: 147 cells,
287 ps). Two things make the measurement a property of the circuit again:

* :func:`canonical_netlist` — synthesis reads the design, elaborates it (``proc``), flattens it
  and folds constants (``opt_expr``: ``~~x`` is ``x``), then writes it out; that word-level
  netlist is relabelled by its structure alone (colour refinement, i.e. 1-dimensional
  Weisfeiler-Leman, over cells and nets, anchored by the port names, the two operands of a
  commutative cell unordered, ties individualised one cell at a time) and written back in that
  order under generated names. Two designs that elaborate to the same cells, in any order and
  under any names, hand the rest of the flow the same input and get the same area and delay.
* :func:`hiergym.envs.rtl.tools.calibrate` — the reference's figures stand for an envelope: the reference and rewrites
  of it that change nothing in the circuit (:func:`rewrites`) are all measured; the worst of them
  is the bar for full credit, the best the one a design must clearly beat (by the PPA tolerance)
  to count as better than the reference, and the spread is reported with the verdict.
"""

from __future__ import annotations

import json
from typing import Any

CANONICAL_VERSION = "canon-4"
"""Bump when the canonical form or the calibration changes (part of every toolchain cache key:
the netlist stage's report carries the reference's envelope)."""

FRONT_PASSES = ("proc", "flatten", "opt_expr", "opt_clean -purge", "memory_collect")
"""What runs before the netlist is canonicalised: elaboration, flattening, constant folding
(which removes double inversions and the wires between a wrapper and its core), memories into
``$mem_v2`` cells (self-contained in the JSON)."""

BACK_PASSES = (
    # the rest of yosys's `synth -flatten` (its "coarse" section after opt_clean, then "fine")
    "check",
    "opt -nodffe -nosdff",
    "fsm",
    "opt",
    "wreduce",
    "peepopt",
    "opt_clean",
    "alumacc",
    "share",
    "opt",
    "memory -nomap",
    "opt_clean",
    "opt -fast -full",
    "memory_map",
    "opt -full",
    "techmap",
    "opt -fast",
    "abc -fast",
    "opt -fast",
)
"""The passes of ``synth`` that follow :data:`FRONT_PASSES`, run on the canonical netlist."""

WORK_BUDGET = 1_000_000
"""Refinement work (cell and incidence visits) allowed per netlist; past it, the remaining ties
are broken in the netlist's own order (deterministic, less canonical). A counted budget, not a
clock, so the result is the same on every machine and can be cached."""

_COMMUTATIVE = frozenset(
    {
        "$and",
        "$or",
        "$xor",
        "$xnor",
        "$add",
        "$mul",
        "$eq",
        "$ne",
        "$eqx",
        "$nex",
        "$logic_and",
        "$logic_or",
        "$_AND_",
        "$_OR_",
        "$_XOR_",
        "$_XNOR_",
        "$_NAND_",
        "$_NOR_",
    }
)
_NAME_PARAMS = frozenset({"MEMID"})
"""Parameters that carry a name, not a circuit: left out of the colour, regenerated."""


class NotCanonical(ValueError):
    """The netlist has something the canonical form does not model (the flow then uses it as
    it is)."""


def _swappable(cell: dict[str, Any]) -> bool:
    if cell["type"] not in _COMMUTATIVE:
        return False
    conns, params = cell["connections"], cell.get("parameters", {})
    if "A" not in conns or "B" not in conns:
        return False
    return str(params.get("A_SIGNED", "0")).lstrip("0") == str(params.get("B_SIGNED", "0")).lstrip(
        "0"
    )


_INVERTERS = frozenset({"$not", "$_NOT_"})


def _simplified(
    cells: list[dict[str, Any]], ports: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """``cells`` without double inversions (an inverter of an inverter's whole output: yosys's
    ``opt_expr`` folds them for single bits only) and without cells whose outputs nothing reads
    (the inner inverters left behind). ``ports`` is updated in place."""
    cells = [dict(c, connections={p: list(b) for p, b in c["connections"].items()}) for c in cells]
    alias: dict[int, Any] = {}

    def resolve(bit: Any) -> Any:
        while isinstance(bit, int) and bit in alias:
            bit = alias[bit]
        return bit

    for _ in range(8):  # each pass folds every pair it sees; chains settle in one or two
        driver: dict[int, tuple[int, int]] = {}  # bit -> (inverter, index) of its Y
        for i, c in enumerate(cells):
            if c["type"] in _INVERTERS:
                for k, bit in enumerate(c["connections"]["Y"]):
                    if isinstance(bit, int):
                        driver[bit] = (i, k)
        folded: set[int] = set()
        for i, c in enumerate(cells):
            a, y = c["connections"].get("A", []), c["connections"].get("Y", [])
            if c["type"] not in _INVERTERS or not a or len(a) != len(y):
                continue
            inner = {driver.get(b, (None, 0))[0] for b in a}
            j = next(iter(inner))
            if len(inner) != 1 or j is None or j == i:
                continue
            if all(driver[b] == (j, k) for k, b in enumerate(a)):
                for out, source in zip(y, cells[j]["connections"]["A"], strict=True):
                    if isinstance(out, int):
                        alias[out] = source
                folded.add(i)
        if not folded:
            break
        cells = [c for i, c in enumerate(cells) if i not in folded]
        for c in cells:
            for p, bits in c["connections"].items():
                c["connections"][p] = [resolve(b) for b in bits]
        for port in ports.values():
            port["bits"] = [resolve(b) for b in port["bits"]]
    return _live(cells, ports)


def _live(cells: list[dict[str, Any]], ports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells some output of which is read (by a live cell or a port), in their order; cells
    without outputs stay."""

    def outputs(c: dict[str, Any]) -> list[int]:
        dirs = c.get("port_directions", {})
        return [
            b
            for p, bits in c["connections"].items()
            if dirs.get(p) == "output"
            for b in bits
            if isinstance(b, int)
        ]

    def inputs(c: dict[str, Any]) -> list[int]:
        dirs = c.get("port_directions", {})
        return [
            b
            for p, bits in c["connections"].items()
            if dirs.get(p) != "output"
            for b in bits
            if isinstance(b, int)
        ]

    readers: dict[int, int] = {}
    for port in ports.values():
        for b in port["bits"]:
            if isinstance(b, int):
                readers[b] = readers.get(b, 0) + 1
    for c in cells:
        for b in inputs(c):
            readers[b] = readers.get(b, 0) + 1
    drivers: dict[int, list[int]] = {}
    for i, c in enumerate(cells):
        for b in outputs(c):
            drivers.setdefault(b, []).append(i)
    dead = [False] * len(cells)
    queue = [
        i for i, c in enumerate(cells) if outputs(c) and not any(readers.get(b) for b in outputs(c))
    ]
    while queue:
        i = queue.pop()
        if dead[i]:
            continue
        dead[i] = True
        for b in inputs(cells[i]):
            readers[b] -= 1
            if readers[b] == 0:
                for j in drivers.get(b, []):
                    if not dead[j] and not any(readers.get(o) for o in outputs(cells[j])):
                        queue.append(j)
    return [c for i, c in enumerate(cells) if not dead[i]]


def _ranks(signatures: list[Any]) -> list[int]:
    order = {s: r for r, s in enumerate(sorted(set(signatures)))}
    return [order[s] for s in signatures]


def canonical_netlist(netlist: dict[str, Any], top: str) -> dict[str, Any]:
    """``netlist`` (yosys ``write_json`` of a flattened design) as a yosys JSON design of one
    module ``top`` whose cells and nets are in structural order under generated names, its ports
    sorted by name, without attributes (a ``src`` or a name carries no circuit).

    Raises:
        NotCanonical: more than one module, or memories outside ``$mem_v2`` cells.
    """
    modules = netlist.get("modules", {})
    if set(modules) != {top}:
        raise NotCanonical(f"expected the flattened module {top} alone, got {sorted(modules)}")
    module = modules[top]
    if module.get("memories"):
        raise NotCanonical("memories outside $mem_v2 cells")
    ports = {n: dict(p, bits=list(p["bits"])) for n, p in module["ports"].items()}
    cells = _simplified(list(module["cells"].values()), ports)
    swap = [_swappable(c) for c in cells]

    def pin_class(i: int, pin: str) -> str:
        return "A|B" if swap[i] and pin in ("A", "B") else pin

    # Incidences of each cell: (pin, bit index, bit); a bit is a net id or a constant string.
    pins: list[list[tuple[str, list[Any]]]] = [
        [(p, list(c["connections"][p])) for p in sorted(c["connections"])] for c in cells
    ]
    nets: dict[int, list[tuple[int, str, int]]] = {}
    for i, row in enumerate(pins):
        for pin, bits in row:
            for k, bit in enumerate(bits):
                if isinstance(bit, int):
                    nets.setdefault(bit, []).append((i, pin_class(i, pin), k))
    port_of: dict[int, list[tuple[str, int]]] = {}
    for name in sorted(ports):
        for k, bit in enumerate(ports[name]["bits"]):
            if isinstance(bit, int):
                port_of.setdefault(bit, []).append((name, k))
                nets.setdefault(bit, [])
    net_ids = sorted(nets)
    net_at = {b: j for j, b in enumerate(net_ids)}
    size = len(cells) + sum(len(v) for v in nets.values()) + 1

    def params_key(i: int) -> tuple[Any, ...]:
        items = {
            k: str(v) for k, v in cells[i].get("parameters", {}).items() if k not in _NAME_PARAMS
        }
        if swap[i]:  # the operand widths go with the operands
            widths = tuple(sorted((items.pop("A_WIDTH", ""), items.pop("B_WIDTH", ""))))
            items["A|B_WIDTH"] = repr(widths)
        return tuple(sorted(items.items()))

    cell_col = _ranks([(c["type"], params_key(i)) for i, c in enumerate(cells)])
    net_col = _ranks([tuple(port_of.get(b, ())) for b in net_ids])
    work = 0

    def bits_key(bits: list[Any]) -> tuple[Any, ...]:
        return tuple((1, net_col[net_at[b]]) if isinstance(b, int) else (0, b) for b in bits)

    # The refinement works on flat integers: a cell's connections as net indices in pin order
    # (constants negative), the two operands of a swappable cell apart; a net's incidences as
    # cell index and a code for (pin class, bit index).
    constant = {"0": -1, "1": -2, "x": -3, "z": -4}

    def flat(bits: list[Any]) -> list[int]:
        return [net_at[b] if isinstance(b, int) else constant.get(b, -5) for b in bits]

    rest: list[list[int]] = []
    operands: list[tuple[list[int], list[int]] | None] = []
    for i, row in enumerate(pins):
        conns = dict(row)
        if swap[i]:
            operands.append((flat(conns["A"]), flat(conns["B"])))
            rest.append([x for p, bits in row if p not in ("A", "B") for x in flat(bits)])
        else:
            operands.append(None)
            rest.append([x for _, bits in row for x in flat(bits)])
    codes = {pk: n for n, pk in enumerate(sorted({(p, k) for v in nets.values() for _, p, k in v}))}
    stride = len(codes) + 1
    incidences = [[(i, codes[(p, k)]) for i, p, k in nets[b]] for b in net_ids]

    def refine() -> None:
        nonlocal cell_col, net_col, work
        classes = len(set(cell_col)) + len(set(net_col))
        while work < WORK_BUDGET:
            work += size
            nc = net_col
            signatures: list[Any] = []
            for i in range(len(cells)):
                sig = (cell_col[i], *(nc[x] if x >= 0 else x for x in rest[i]))
                ab = operands[i]
                if ab is not None:
                    ta = tuple(nc[x] if x >= 0 else x for x in ab[0])
                    tb = tuple(nc[x] if x >= 0 else x for x in ab[1])
                    sig = (*sig, *(min(ta, tb)), -9, *(max(ta, tb)))
                signatures.append(sig)
            cell_col = _ranks(signatures)
            cc = cell_col
            net_col = _ranks(
                [
                    (nc[j], *sorted(cc[i] * stride + code for i, code in incidences[j]))
                    for j in range(len(net_ids))
                ]
            )
            now = len(set(cell_col)) + len(set(net_col))
            if now == classes:
                return
            classes = now

    refine()
    # Ties the refinement leaves: individualise the first cell (in the netlist's order) of the
    # lowest tied colour, refine again. Cells an automorphism swaps give the same form whichever
    # is picked. Past the budget, every remaining tie is broken in the netlist's order at once.
    while len(set(cell_col)) < len(cells):
        if work >= WORK_BUDGET:
            cell_col = _ranks([(c, i) for i, c in enumerate(cell_col)])
            break
        first: dict[int, int] = {}
        tied: tuple[int, int] | None = None
        for i, c in enumerate(cell_col):
            if c in first:
                if tied is None or c < tied[0]:
                    tied = (c, first[c])
            else:
                first[c] = i
        assert tied is not None
        colour, chosen = tied
        cell_col = [
            2 * c + (1 if c == colour and i != chosen else 0) for i, c in enumerate(cell_col)
        ]
        refine()
    return _emit(top, ports, cells, pins, swap, cell_col, net_ids, net_col, port_of, bits_key)


def _emit(
    top: str,
    ports: dict[str, dict[str, Any]],
    cells: list[dict[str, Any]],
    pins: list[list[tuple[str, list[Any]]]],
    swap: list[bool],
    cell_col: list[int],
    net_ids: list[int],
    net_col: list[int],
    port_of: dict[int, list[tuple[str, int]]],
    bits_key: Any,
) -> dict[str, Any]:
    new_bit: dict[int, int] = {}
    for name in sorted(ports):
        for bit in ports[name]["bits"]:
            if isinstance(bit, int) and bit not in new_bit:
                new_bit[bit] = len(new_bit) + 2
    for j in sorted(range(len(net_ids)), key=lambda j: net_col[j]):
        new_bit.setdefault(net_ids[j], len(new_bit) + 2)

    def remap(bits: list[Any]) -> list[Any]:
        return [new_bit[b] if isinstance(b, int) else b for b in bits]

    out_ports = {
        name: {"direction": ports[name]["direction"], "bits": remap(ports[name]["bits"])}
        for name in sorted(ports)
    }
    out_cells: dict[str, Any] = {}
    for rank, i in enumerate(sorted(range(len(cells)), key=lambda i: cell_col[i])):
        cell = cells[i]
        conns = dict(pins[i])
        params = dict(cell.get("parameters", {}))
        if swap[i] and bits_key(conns["B"]) < bits_key(conns["A"]):
            conns["A"], conns["B"] = conns["B"], conns["A"]
            for a, b in (("A_WIDTH", "B_WIDTH"), ("A_SIGNED", "B_SIGNED")):
                if a in params or b in params:
                    params[a], params[b] = params.get(b), params.get(a)
        if "MEMID" in params:
            params["MEMID"] = f"$hg$mem{rank:07d}"
        out_cells[f"$hg$c{rank:07d}"] = {
            "hide_name": 1,
            "type": cell["type"],
            "parameters": dict(sorted(params.items())),
            "attributes": {},
            "port_directions": dict(sorted(cell.get("port_directions", {}).items())),
            "connections": {p: remap(conns[p]) for p in sorted(conns)},
        }
    netnames: dict[str, Any] = {
        name: {"hide_name": 0, "bits": out_ports[name]["bits"], "attributes": {}}
        for name in sorted(ports)
    }
    for bit, nb in sorted(new_bit.items(), key=lambda kv: kv[1]):
        if bit not in port_of:
            netnames[f"$hg$n{nb:07d}"] = {"hide_name": 1, "bits": [nb], "attributes": {}}
    return {
        "creator": CANONICAL_VERSION,
        "modules": {
            top: {
                "attributes": {"top": "00000000000000000000000000000001"},
                "ports": out_ports,
                "cells": out_cells,
                "netnames": netnames,
            }
        },
    }


def canonical_json(text: str, top: str) -> str:
    """:func:`canonical_netlist` from and to JSON text."""
    return json.dumps(canonical_netlist(json.loads(text), top), indent=0)


# --------------------------------------------------------------------------------------------
# Rewrites of the reference that change nothing in its circuit


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def _wrapper(task: Any, core_name: str, *, reverse: bool, invert_twice: bool) -> str:
    from .verilog import rename_modules

    ports = list(reversed(task.ports)) if reverse else list(task.ports)
    outs = [p for p in ports if p.direction == "output"]
    header = ",\n".join(f"    {p.direction} {_range(p.width)}{p.name}" for p in ports)
    wires = "".join(f"    wire {_range(p.width)}hgw_{p.name};\n" for p in outs)
    conns = ", ".join(
        f".{p.name}(hgw_{p.name})" if p.direction == "output" else f".{p.name}({p.name})"
        for p in ports
    )
    drive = "".join(
        f"    assign {p.name} = "
        + (f"~(~hgw_{p.name})" if invert_twice else f"hgw_{p.name}")
        + ";\n"
        for p in outs
    )
    core = rename_modules(task.reference, {task.module: core_name})
    return (
        f"{core}\nmodule {task.module} (\n{header}\n);\n{wires}"
        f"    {core_name} u_core ({conns});\n{drive}endmodule\n"
    )


def rewrites(task: Any) -> dict[str, str]:
    """The reference and rewrites of it that change nothing in the circuit: inside a helper
    module, its outputs inverted twice, its ports declared and connected in reverse order (each
    a design an agent could submit: no reserved module names)."""
    core = f"{task.module}_cal_core"
    return {
        "reference": task.reference,
        "wrapped": _wrapper(task, core, reverse=False, invert_twice=False),
        "inverted_twice": _wrapper(task, core, reverse=False, invert_twice=True),
        "ports_reversed": _wrapper(task, core + "_r", reverse=True, invert_twice=False),
    }


# --------------------------------------------------------------------------------------------
# The reference's envelope

AREA_FLOOR = 0.53
"""One INV_X1 of hiergym_generic.lib: tiny designs do not divide by zero."""
DELAY_FLOOR_PS = 10.0


def cost(area: float, delay_ps: float) -> float:
    """The PPA cost the verifier compares: the geometric mean of (floored) area and delay."""
    return ((area + AREA_FLOOR) * (delay_ps + DELAY_FLOOR_PS)) ** 0.5


FIGURES = ("cells", "area", "delay_ps", "depth")


IN_PROCESS_MAX_BYTES = 64_000
"""The largest front netlist (yosys's JSON) put in canonical form in the verifier's own process;
a larger one goes through :func:`main` in a Python process under the synthesis limits. The work
grows about as the square of the size (a chain of registers and adders: 32 kB 16 ms, 61 kB 39 ms,
119 kB 180 ms, 239 kB 520 ms CPU; the 8-bit counter's 4.6 kB: 1 ms), so past this size it would
hold the interpreter longer than the 30-40 ms a Python process takes to start."""


def canonical_text(text: str, top: str) -> tuple[str, str]:
    """``(canonical JSON, "")`` for the front netlist ``text``; ``(text, why)`` for a netlist the
    canonical form does not model: it is measured as it is (the figures are still those of the
    netlist that is proven), never refused for it."""
    try:
        return canonical_json(text, top), ""
    except (NotCanonical, KeyError, TypeError, ValueError, IndexError, AssertionError) as e:
        return text, f"hiergym canonical form not applied: {type(e).__name__}: {e}"[:300]


def main(argv: list[str]) -> int:
    """``python ppa.py FRONT.json OUT.json TOP``: :func:`canonical_text` of a netlist too large
    to canonicalise in the verifier's process, inside the synthesis limits (the note, if any,
    goes to stdout: the log)."""
    front, out, top = argv
    with open(front) as f:
        text = f.read()
    result, note = canonical_text(text, top)
    if note:
        print(note)
    with open(out, "w") as f:
        f.write(result)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
