"""Words for the 2-D scene world: a vocabulary, a template grammar, and what each phrase denotes.

Chapter ``world_scenes2d``. A scene is described by its object table (one row per object, as
:func:`cvtutor.data.scenes2d.export.object_table` writes it: ``slot``, ``category``, ``color``,
``texture``, ``size``, ``cx``, ``cy``, ``gender_label``...). A :class:`Phrase` is a structured
noun phrase (quantifier, attributes, noun, an optional spatial relation to a landmark phrase, an
optional part); :func:`text` writes it in English with the grammar below and :func:`denotation`
returns the set of objects it picks out *in that scene*, so uniqueness and ambiguity are known
exactly rather than guessed:

    NP   -> DET ATTR* NOUN [REL NP] | "the" PART "of" NP
    DET  -> "the" (one referent) | "all" (a group, plural noun) | "a"
    ATTR -> SIZE | COLOUR | TEXTURE          REL -> "left of" | "right of" | "above" | "below"

A noun matches an object when it is the object's category, a synonym, its hypernym or its
super-category; the person words ``man``/``woman`` match people by their gender *label* (what a
caption writer saw), ``person``/``people`` every person.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("disc", "dot"),
    "square": ("block",),
    "rectangle": ("slab", "plank"),
    "oval": ("ellipse",),
    "triangle": (),
    "diamond": ("rhombus",),
    "ring": ("hoop",),
    "bar": ("stick", "rod"),
    "arc": ("curve",),
    "house": ("home", "cottage"),
    "snowman": (),
    "lamp": ("light",),
    "tree": (),
    "person": (),
}
HYPERNYMS: dict[str, str] = {
    "circle": "shape",
    "square": "shape",
    "rectangle": "shape",
    "oval": "shape",
    "triangle": "shape",
    "diamond": "shape",
    "ring": "shape",
    "bar": "line",
    "arc": "line",
    "house": "building",
    "snowman": "figure",
    "lamp": "furniture",
    "tree": "plant",
    "person": "figure",
}
COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {"grey": ("gray",), "purple": ("violet",)}
TEXTURE_WORDS: dict[str, str] = {
    "flat": "plain",
    "stripes": "striped",
    "checker": "checkered",
    "dots": "dotted",
    "gradient": "shaded",
    "grating": "wavy",
    "noise": "speckled",
}
SIZE_WORDS = ("small", "medium", "large")
SIZE_BINS = (0.02, 0.08)  # area / image area below which an object is small, medium
PERSON_WORDS = {0: "man", 1: "woman"}
RELATIONS = ("left of", "right of", "above", "below")
IRREGULAR_PLURALS = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "snowman": "snowmen",
    "figure": "figures",
    "furniture": "furniture",
    "shape": "shapes",
}
NUMBERS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def plural(word: str) -> str:
    """The plural of a noun of this vocabulary."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    return word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s")


def size_word(area_fraction: float) -> str:
    """``small``/``medium``/``large`` from an object's box area as a fraction of the image."""
    return SIZE_WORDS[sum(area_fraction >= t for t in SIZE_BINS)]


def noun_matches(noun: str | None, category: str, gender_label: int = -1) -> bool:
    """Whether ``noun`` (None: any object) can name an object of ``category``."""
    if noun is None or noun in ("object", "thing"):
        return True
    if noun in PERSON_WORDS.values():
        return category == "person" and PERSON_WORDS.get(int(gender_label)) == noun
    return noun == category or noun in SYNONYMS.get(category, ()) or noun == HYPERNYMS.get(category)


def color_matches(word: str | None, color: str) -> bool:
    return word is None or word == color or word in COLOR_SYNONYMS.get(color, ())


@dataclass(frozen=True)
class Phrase:
    """A noun phrase: ``noun`` (a category, synonym, hypernym or person word; None: "object"),
    attributes ``size``/``color``/``texture`` (words of this vocabulary or None), ``relation``
    (one of :data:`RELATIONS`) to a ``landmark`` phrase, ``part`` (a part word: the phrase names
    that part of the objects it denotes) and ``quantifier`` (``"the"``, ``"all"`` or ``"a"``)."""

    noun: str | None = None
    color: str | None = None
    size: str | None = None
    texture: str | None = None
    relation: str | None = None
    landmark: "Phrase | None" = None
    part: str | None = None
    quantifier: str = "the"

    def __post_init__(self) -> None:
        if self.quantifier not in ("the", "all", "a"):
            raise ValueError(f"quantifier must be 'the', 'all' or 'a', got {self.quantifier!r}")
        if (self.relation is None) != (self.landmark is None):
            raise ValueError("a relation needs a landmark phrase and a landmark needs a relation")
        if self.relation is not None and self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}; expected one of {RELATIONS}")
        if self.size is not None and self.size not in SIZE_WORDS:
            raise ValueError(f"unknown size word {self.size!r}; expected one of {SIZE_WORDS}")
        if self.texture is not None and self.texture not in TEXTURE_WORDS.values():
            raise ValueError(
                f"unknown texture word {self.texture!r}; expected one of "
                f"{tuple(TEXTURE_WORDS.values())}"
            )

    def replace(self, **changes) -> "Phrase":
        return replace(self, **changes)


def related(a, b, relation: str) -> bool:
    """Whether object ``a`` is ``relation`` object ``b`` (rows with ``cx``, ``cy``): compares box
    centres (y grows downwards)."""
    return {
        "left of": a.cx < b.cx,
        "right of": a.cx > b.cx,
        "above": a.cy < b.cy,
        "below": a.cy > b.cy,
    }[relation]


def denotation(phrase: Phrase, objects: pd.DataFrame | list) -> frozenset[int]:
    """The ``slot`` s of the objects of one scene (its object table, or that table's rows as
    ``itertuples``) that ``phrase`` picks out. A relation holds to *some* object of the
    landmark's denotation other than the object itself; a part phrase keeps the objects that
    have that part (the caller reads the part from the part map)."""
    rows = list(objects.itertuples(index=False)) if isinstance(objects, pd.DataFrame) else objects
    hits = [
        r
        for r in rows
        if noun_matches(phrase.noun, r.category, getattr(r, "gender_label", -1))
        and color_matches(phrase.color, r.color)
        and (phrase.size is None or phrase.size == r.size)
        and (phrase.texture is None or phrase.texture == TEXTURE_WORDS[r.texture])
        and (phrase.part is None or phrase.part in r.parts)
    ]
    if phrase.landmark is not None:
        marks = [r for r in rows if r.slot in denotation(phrase.landmark, rows)]
        hits = [
            r
            for r in hits
            if any(related(r, m, phrase.relation) for m in marks if m.slot != r.slot)
        ]
    return frozenset(int(r.slot) for r in hits)


def text(phrase: Phrase) -> str:
    """The phrase in English (see the grammar in the module docstring)."""
    noun = phrase.noun or "object"
    if phrase.part is not None:
        return f"the {phrase.part} of {text(phrase.replace(part=None, quantifier='the'))}"
    words = [phrase.size, phrase.color, phrase.texture]
    noun = plural(noun) if phrase.quantifier == "all" else noun
    out = " ".join([phrase.quantifier, *[w for w in words if w], noun])
    if phrase.relation is not None:
        out += f" {phrase.relation} {text(phrase.landmark)}"
    return out


def object_phrase(
    row, quantifier: str = "the", attributes: tuple[str, ...] = ("size", "color", "texture")
) -> Phrase:
    """The phrase naming one object (a row of the object table) by its category (a person by
    the gender label's word) and the given attributes."""
    noun = row.category
    if noun == "person":
        noun = PERSON_WORDS.get(int(row.gender_label), "person")
    words = {
        k: (TEXTURE_WORDS[row.texture] if k == "texture" else getattr(row, k)) for k in attributes
    }
    return Phrase(noun=noun, quantifier=quantifier, **words)


def referring_expression(objects: pd.DataFrame, slot: int) -> tuple[Phrase, bool]:
    """A short phrase for object ``slot`` and whether it is unique in its scene. Incremental
    (Dale & Reiter): the noun, then colour, size, texture while they cut the set of distractors;
    if still ambiguous, a relation to an object that has a unique phrase of noun and colour."""
    rows = list(objects.itertuples(index=False))
    row = next(r for r in rows if r.slot == slot)
    phrase = object_phrase(row, attributes=())
    for attr in ("color", "size", "texture"):
        current = denotation(phrase, rows)
        if len(current) == 1:
            return phrase, True
        value = TEXTURE_WORDS[row.texture] if attr == "texture" else getattr(row, attr)
        candidate = phrase.replace(**{attr: value})
        if len(denotation(candidate, rows)) < len(current):
            phrase = candidate
    if len(denotation(phrase, rows)) == 1:
        return phrase, True
    for other in rows:
        mark = object_phrase(other, attributes=("color",))
        if other.slot == slot or denotation(mark, rows) != {other.slot}:
            continue
        for rel in RELATIONS:
            candidate = phrase.replace(relation=rel, landmark=mark)
            if denotation(candidate, rows) == {slot}:
                return candidate, True
    return phrase, False


def caption(objects: pd.DataFrame, scene: str) -> str:
    """A caption of a scene: its type and its objects grouped by (colour, noun), e.g. "A street
    scene with a red house, two men and a yellow lamp." People are named by their gender label."""
    groups: dict[tuple[str, str], int] = {}
    for r in objects.sort_values("slot").itertuples(index=False):
        if r.category == "person":
            key = ("", PERSON_WORDS.get(int(r.gender_label), "person"))
        else:
            key = (r.color, r.category)
        groups[key] = groups.get(key, 0) + 1
    parts = []
    for (color, noun), count in groups.items():
        word = NUMBERS[count] if count < len(NUMBERS) else str(count)
        parts.append(" ".join(w for w in (word, color, plural(noun) if count > 1 else noun) if w))
    body = (
        parts[0]
        if len(parts) == 1
        else ", ".join(parts[:-1]) + " and " + parts[-1] if parts else "nothing"
    )
    article = "An" if scene[0] in "aeiou" else "A"
    return f"{article} {scene} scene with {body}."
