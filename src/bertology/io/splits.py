"""Leak-free train/dev/test splits: the one splitting helper every experiment uses.

A split leaks when the same input stands on both sides: a model that memorised a training sequence gets it
right in test for free, and a pretrained model memorises faster than one from scratch, so the leak flatters
exactly the comparison the experiment makes (splice: 33 of 320 test sequences were also in train).

Here the unit that is dealt out is a *connected set of examples*: examples with the same normalised input, and
examples of one group (a music piece), are joined, transitively, and always land on the same side. Inputs that
occur with two different labels are counted as conflicts (they stay together too, labelled by their majority).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Hashable, Sequence

import numpy as np

PARTS = ("train", "dev", "test")
_SPACE = re.compile(r"\s+")


def normalise_input(text: str, fold_case: bool = True) -> str:
    """The form under which two inputs count as the same: white space folded, case folded where the task
    ignores it (DNA, protein and the word-mapped symbols do)."""
    text = _SPACE.sub(" ", text).strip()
    return text.casefold() if fold_case else text


@dataclass
class SplitReport:
    """What deduplication found; saved in results.json as `split_report`."""

    examples: int
    distinct_inputs: int
    duplicate_examples: int          # examples whose input equals an earlier example's
    conflicting_inputs: int          # distinct inputs seen with two or more labels
    conflicting_examples: int        # the examples carrying those inputs
    units: int                       # what was dealt out: joined duplicates and groups
    examples_per_part: dict = field(default_factory=dict)
    cross_part_duplicates: int = 0   # inputs found in two parts after splitting: 0 by construction (checked)

    def to_json(self) -> dict:
        return asdict(self)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def join_units(keys: Sequence[Hashable], groups: Sequence[Hashable] | None = None) -> list[list[int]]:
    """Example indices joined into units: same key, or same group (transitively). Units in order of their
    first example, members in file order."""
    uf = _UnionFind(len(keys))
    for column in ([keys] + ([groups] if groups is not None else [])):
        first: dict = {}
        for i, k in enumerate(column):
            if k in first:
                uf.union(first[k], i)
            else:
                first[k] = i
    members: dict[int, list[int]] = {}
    for i in range(len(keys)):
        members.setdefault(uf.find(i), []).append(i)
    return list(members.values())


def leak_free_split(keys: Sequence[Hashable], labels: Sequence[str], fractions=(0.8, 0.1, 0.1), seed: int = 0,
                    groups: Sequence[Hashable] | None = None) -> tuple[dict[str, list[int]], SplitReport]:
    """Seeded train/dev/test split, stratified by label, with no key (normalised input) and no group on two
    sides. Per label, its units are shuffled and dealt out by the fractions; a label with at least 3 units gets
    at least one in dev and in test, so every class is scored.

    keys: one per example, already normalised (`normalise_input`). Returns ({part: sorted indices}, report)."""
    if len(keys) != len(labels) or (groups is not None and len(groups) != len(keys)):
        raise ValueError("keys, labels and groups must have one entry per example")
    rng = np.random.default_rng(seed + 7919)
    units = join_units(keys, groups)
    by_label: dict[str, list[list[int]]] = {}
    for unit in units:
        label = Counter(labels[i] for i in unit).most_common(1)[0][0]
        by_label.setdefault(label, []).append(unit)
    out: dict[str, list[int]] = {p: [] for p in PARTS}
    for label, us in sorted(by_label.items()):
        us = [us[j] for j in rng.permutation(len(us))]
        n = len(us)
        n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
        n_dev = max(1, round(n * fractions[1])) if n >= 3 else 0
        for k, unit in enumerate(us):
            out["test" if k < n_test else ("dev" if k < n_test + n_dev else "train")] += unit
    split = {p: sorted(v) for p, v in out.items()}
    labels_of: dict = {}
    for k, y in zip(keys, labels):
        labels_of.setdefault(k, set()).add(y)
    conflicting = {k for k, ys in labels_of.items() if len(ys) > 1}
    report = SplitReport(
        examples=len(keys), distinct_inputs=len(labels_of), duplicate_examples=len(keys) - len(labels_of),
        conflicting_inputs=len(conflicting), conflicting_examples=sum(k in conflicting for k in keys),
        units=len(units), examples_per_part={p: len(v) for p, v in split.items()},
        cross_part_duplicates=cross_part_duplicates(split, keys))
    assert report.cross_part_duplicates == 0, "a split unit spans two parts"
    return split, report


def cross_part_duplicates(split: dict[str, list[int]], keys: Sequence[Hashable]) -> int:
    """How many distinct keys occur in more than one part: the leak count (0 for a sound split)."""
    parts_of: dict = {}
    for part, idx in split.items():
        for i in idx:
            parts_of.setdefault(keys[i], set()).add(part)
    return sum(len(p) > 1 for p in parts_of.values())
