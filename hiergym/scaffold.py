"""``hiergym init NAME``: a new domain plugin package that installs and passes the conformance check
as generated (``check_domain`` and the hack matrix), in the shape every built-in domain follows:
data -> tools -> tasks -> verifier -> oracle -> env, each file importing only those before it."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "{package}/__init__.py",
    "data.py.tmpl": "{package}/data.py",
    "tools.py.tmpl": "{package}/tools.py",
    "tasks.py.tmpl": "{package}/tasks.py",
    "verifier.py.tmpl": "{package}/verifier.py",
    "oracle.py.tmpl": "{package}/oracle.py",
    "env.py.tmpl": "{package}/env.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


def names(name: str) -> dict[str, str]:
    """The identifiers a domain called ``name`` gets (package, class, env id)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise ValueError(
            f"a domain name is lower case letters, digits and underscores, starting with a letter "
            f"(it names the package and the env id), got {name!r}"
        )
    cls = "".join(part.capitalize() for part in name.split("_"))
    return {
        "name": name,
        "package": f"hiergym_{name}",
        "cls": cls,
        "env_id": f"hiergym/{cls}-v0",
        "title": f"the {name} domain",
    }


def init_domain(name: str, target: Path) -> list[Path]:
    """Write the package into ``target`` (created; must not already hold a pyproject.toml)."""
    values = names(name)
    if (target / "pyproject.toml").exists():
        raise FileExistsError(f"{target} already holds a pyproject.toml; choose an empty folder")
    templates = resources.files("hiergym") / "templates" / "domain"
    written = []
    for template, relative in FILES.items():
        path = target / relative.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((templates / template).read_text().format(**values))
        written.append(path)
    return written
