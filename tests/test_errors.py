"""``did_you_mean``: the same suggestion as difflib's ``get_close_matches``, computed fast."""

from __future__ import annotations

import difflib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hiergym.errors import closest, did_you_mean

ALPHABET = "ABHR-0123aeio"


def _difflib(name: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return close[0] if close else None


@settings(max_examples=400, deadline=None)
@given(
    st.text(ALPHABET, max_size=12),
    st.lists(st.text(ALPHABET, max_size=12), max_size=40),
)
def test_closest_is_difflibs_answer(name: str, choices: list[str]) -> None:
    assert closest(name, choices) == _difflib(name, choices)


def test_closest_on_ids_shaped_like_travel_places() -> None:
    """Thousands of near-identical ids (many ties): the answer is still difflib's."""
    rng = random.Random(0)
    places = [f"{k}-{c}-{i:03d}" for k in "HRA" for c in ("BOS", "LAX", "NYC") for i in range(300)]
    places += [f"{hub}-{c}" for hub in ("CENTER", "AIRPORT", "STATION") for c in ("BOS", "LAX")]
    rng.shuffle(places)
    words = ["H-BOS-04", "AIRPORT-BS", "CENTER-NYC", "XYZ", "R-LAX-0012", "A-NYC-3", ""]
    words += ["".join(rng.choice("HRA-BOSLAX0123") for _ in range(rng.randint(1, 11)))
              for _ in range(40)]  # fmt: skip
    for word in words:
        assert closest(word, places) == _difflib(word, places), word


def test_did_you_mean_suffix() -> None:
    assert did_you_mean("serch", ["search", "submit"]) == "; did you mean 'search'?"
    assert did_you_mean("zzzz", ["search", "submit"]) == ""
    assert did_you_mean("anything", []) == ""
