"""What a recommendation message claims: prices in any currency form, attributes and option values.

The response rubric scores *claims*, not words. A message is read in three passes:

1. **Prices.** Every number written as a price — ``$79.99``, ``$ 79.99``, ``US$79.99``,
   ``79.99$``, ``79.99 USD``, ``USD 79.99``, ``79.99 dollars``, ``price: 79.99``, ``costs 80``, or
   any number with exactly two decimals (``79.99``: nothing else in the catalog is written that
   way) — becomes a :class:`Price` with its currency (``USD`` unless marked ``€``/``EUR``/``£``/
   ``GBP``/``¥``...). Price spans are then blanked, so ``$10`` is never read as shoe size 10.
2. **Phrases.** The rest is cut into tokens and matched, longest first, against one vocabulary of
   the whole catalog: every category's attributes, option names and values, product types and
   brands (so ``magnetic tiles`` is a product type, not the claim ``magnetic``; ``no pull`` and
   ``non slip`` are attributes, not negations).
3. **Negation.** A cue (``not``, ``no``, ``never``, ``without``, ``lacks``, ``non``, ``neither``,
   ``nor``, ``none``, any ``-n't``) negates every phrase after it up to the end of its clause
   (``.``, ``!``, ``?``, ``;``, a line break) or a contrast word (``but``, ``however``,
   ``although``, ``though``, ``yet``, ``whereas``, ``while``, ``except``). ``not only`` is not a
   negation. Ambiguity is read as negation: a rubric must never pay for a claim it cannot read as
   made.

Short option values that are ordinary tokens (``S``, ``M``, ``L``, ``7``..``12``) count only right
after their option's name (``size M``, ``sizes 8, 9 and 10``), never loose in the text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .data import load_vocabulary

_TOKEN = re.compile(r"\d+(?:\.\d+)?[a-z]*|[a-z][a-z0-9]*(?:['’][a-z]+)?|[.!?;\n]")
_TERMINATORS = {".", "!", "?", ";", "\n"}
_CONTRAST = {"but", "however", "although", "though", "yet", "whereas", "while", "except"}
_CUES = {
    "not",
    "no",
    "never",
    "without",
    "lacks",
    "lack",
    "lacking",
    "missing",
    "neither",
    "nor",
    "non",
    "none",
    "cannot",
    "isnt",
    "arent",
    "doesnt",
    "dont",
    "wont",
    "cant",
    "wasnt",
    "hasnt",
    "havent",
    "nothing",
}
_LIST_JOINERS = {"and", "or", "to", "in"}

# -- prices ----------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"(?<![a-z0-9.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+,\d{2}(?![\d,])|\d+(?:\.\d+)?)(?![a-z0-9])"
)
_PREFIX = re.compile(r"(us\$|c\$|a\$|\$|€|£|¥|\busd|\beur|\bgbp|\bjpy)\s*$")
_SUFFIX = re.compile(
    r"^\s*(\$|€|£|¥|usd\b|us dollars?\b|dollars?\b|bucks\b|eur\b|euros?\b|gbp\b|pounds?\b|jpy\b|yen\b)"
)
_PRICE_WORD = re.compile(
    r"\b(prices?|priced|costs?|costing|pay|paid|total|budget|retails?|sells?|sold)\b[\s:=]*"
    r"(?:(?:is|of|at|for|just|only|around|about|was|will be|comes to)[\s:=]+)*$"
)
_UNIT_AFTER = re.compile(r"^\s*(fl|oz|lb|inch|pieces|count|pack|person|v)\b")
_CURRENCY = {
    "$": "USD",
    "us$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "us dollar": "USD",
    "us dollars": "USD",
    "bucks": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "¥": "JPY",
    "jpy": "JPY",
    "yen": "JPY",
    "c$": "CAD",
    "a$": "AUD",
}


@dataclass(frozen=True)
class Price:
    amount: float
    currency: str
    text: str


def find_prices(text: str) -> tuple[list[Price], str]:
    """Every price stated in ``text`` (lowercased) and the text with those prices blanked."""
    prices: list[Price] = []
    spans: list[tuple[int, int]] = []
    for m in _NUMBER.finditer(text):
        raw, start, end = m.group(1), m.start(1), m.end(1)
        before, after = text[max(0, start - 40) : start], text[end : end + 14]
        pre, post = _PREFIX.search(before), _SUFFIX.search(after)
        two_decimals = re.fullmatch(r"\d+(?:,\d{3})*\.\d{2}|\d+,\d{2}", raw) is not None
        marker = pre.group(1) if pre else post.group(1) if post else None
        if marker is None and not (
            _PRICE_WORD.search(before) or (two_decimals and not _UNIT_AFTER.search(after))
        ):
            continue
        amount = float(
            raw.replace(",", ".") if re.fullmatch(r"\d+,\d{2}", raw) else raw.replace(",", "")
        )
        currency = _CURRENCY.get(marker.strip(), "USD") if marker else "USD"
        lo = start - len(pre.group(0)) if pre else start
        hi = end + len(post.group(0)) if post else end
        prices.append(Price(amount, currency, text[lo:hi].strip()))
        spans.append((lo, hi))
    if not spans:
        return prices, text
    out, last = [], 0
    for lo, hi in spans:
        out += [text[last:lo], " "]
        last = hi
    out.append(text[last:])
    return prices, "".join(out)


# -- phrases ---------------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    return [t.replace("’", "'") for t in _TOKEN.findall(text.lower())]


@functools.lru_cache(maxsize=8192)
def _key(phrase: str) -> tuple[str, ...]:
    return tuple(t for t in tokens(phrase) if t not in _TERMINATORS)


@dataclass
class Vocabulary:
    """The whole catalog's phrases: token tuple -> what it names."""

    attributes: set[tuple[str, ...]] = field(default_factory=set)
    values: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # value -> option names
    names: set[str] = field(default_factory=set)  # option names (single tokens)
    neutral: set[tuple[str, ...]] = field(default_factory=set)  # types, brands: consume tokens
    category_values: dict[str, dict[str, set[tuple[str, ...]]]] = field(default_factory=dict)
    lengths: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """First token -> the lengths of the phrases it starts, longest first."""


@functools.lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    vocab = Vocabulary()
    colors: set[tuple[str, ...]] = set()
    for cat in load_vocabulary()["categories"]:
        vocab.attributes.update(_key(a) for a in cat["attributes"])
        vocab.neutral.update(_key(t) for t in (*cat["types"], *cat["brands"]))
        per: dict[str, set[tuple[str, ...]]] = {}
        for name, values in cat["options"].items():
            vocab.names.add(name)
            per[name] = {_key(v) for v in values}
            for v in per[name]:
                vocab.values.setdefault(v, set()).add(name)
            if name == "color":
                colors |= per[name]
        vocab.category_values[cat["path"]] = per
    # A colour is a colour in every category (a navy dress is a false claim about a dress's colour);
    # "clear" is an ordinary word outside phone cases, so only the categories that sell it read it.
    colors.discard(("clear",))
    for per in vocab.category_values.values():
        if "color" in per:
            per["color"] = per["color"] | colors
    vocab.neutral -= vocab.attributes
    starts: dict[str, set[int]] = {}
    for k in (*vocab.attributes, *vocab.values, *vocab.neutral):
        starts.setdefault(k[0], set()).add(len(k))
    vocab.lengths = {t: tuple(sorted(ns, reverse=True)) for t, ns in starts.items()}
    return vocab


def _ambiguous(value: tuple[str, ...]) -> bool:
    return len(value) == 1 and (value[0].isdigit() or len(value[0]) <= 1)


def _is_cue(token: str) -> bool:
    return token in _CUES or token.endswith("n't")


@dataclass
class Claims:
    """What a message states, positively and negated."""

    prices: list[Price]
    attributes: set[tuple[str, ...]] = field(default_factory=set)
    negated_attributes: set[tuple[str, ...]] = field(default_factory=set)
    values: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)  # option -> values stated
    negated_values: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    words: tuple[str, ...] = ()

    def has_phrase(self, phrase: str) -> bool:
        """``phrase``'s tokens appear consecutively among the message's tokens."""
        key = _key(phrase)
        n = len(key)
        return n > 0 and any(self.words[i : i + n] == key for i in range(len(self.words) - n + 1))


def read(message: str, category: str) -> Claims:
    """The claims of ``message`` about a product of ``category``."""
    vocab = vocabulary()
    prices, rest = find_prices(message.lower())
    toks = tokens(rest)
    claims = Claims(prices, words=tuple(t for t in toks if t not in _TERMINATORS))
    dims = vocab.category_values.get(category, {})
    negated = False
    last_option: str | None = None  # the option an enumeration of short values belongs to
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok in _TERMINATORS or tok in _CONTRAST:
            negated, last_option = False, None
            i += 1
            continue
        match, size = None, 0
        for n in vocab.lengths.get(tok, ()):
            key = tuple(toks[i : i + n])
            if key in vocab.attributes or key in vocab.values or key in vocab.neutral:
                match, size = key, n
                break
        if match is None:
            if _is_cue(tok) and not (tok == "not" and i + 1 < len(toks) and toks[i + 1] == "only"):
                negated = True
            name = tok[:-1] if tok.endswith("s") and tok[:-1] in vocab.names else tok
            if name in vocab.names or tok == "colour":
                last_option = "color" if tok == "colour" else name
            elif tok not in _LIST_JOINERS:
                last_option = None
            i += 1
            continue
        i += size
        if match in vocab.attributes:
            (claims.negated_attributes if negated else claims.attributes).add(match)
            last_option = None
            continue
        if match in vocab.neutral and match not in vocab.values:
            last_option = None
            continue
        for option, values in dims.items():
            if match not in values:
                continue
            if _ambiguous(match) and last_option != option:
                continue
            table = claims.negated_values if negated else claims.values
            table.setdefault(option, set()).add(match)
        if not _ambiguous(match):
            last_option = next((o for o in dims if match in dims[o]), last_option)
    return claims


def phrase(key: tuple[str, ...]) -> str:
    return " ".join(key)


def key(text: str) -> tuple[str, ...]:
    """The token tuple of a vocabulary phrase or option value."""
    return _key(text)
