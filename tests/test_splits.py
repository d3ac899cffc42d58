"""Leak-free splits (io.splits): duplicates and groups never stand on two sides; conflicts are counted."""

from bertology.io.splits import cross_part_duplicates, join_units, leak_free_split, normalise_input


def test_planted_duplicates_never_cross_parts_and_are_counted():
    keys = [f"seq{i}" for i in range(200)]
    labels = ["a" if i % 2 else "b" for i in range(200)]
    for i in range(0, 60, 3):              # plant 20 exact duplicates of earlier examples, same label
        keys.append(keys[i])
        labels.append(labels[i])
    split, report = leak_free_split(keys, labels, seed=1)
    assert report.duplicate_examples == 20 and report.distinct_inputs == 200
    assert cross_part_duplicates(split, keys) == 0
    assert sorted(i for v in split.values() for i in v) == list(range(len(keys)))
    assert split["dev"] and split["test"]


def test_conflicting_labels_are_counted_and_kept_together():
    keys = ["x", "x", "y", "z", "w", "v", "u", "t"]
    labels = ["a", "b", "a", "b", "a", "b", "a", "b"]
    split, report = leak_free_split(keys, labels, seed=0)
    assert report.conflicting_inputs == 1 and report.conflicting_examples == 2
    part_of = {i: p for p, idx in split.items() for i in idx}
    assert part_of[0] == part_of[1]


def test_groups_and_duplicates_join_transitively():
    # 0 and 1 share a group, 1 and 2 share an input: all three are one unit
    units = join_units(["p", "q", "q", "r"], groups=["g1", "g1", "g2", "g3"])
    assert sorted(map(sorted, units)) == [[0, 1, 2], [3]]


def test_normalise_input_folds_space_and_case():
    assert normalise_input("  ACG\tt ") == normalise_input("acg t")
    assert normalise_input("ACG", fold_case=False) != normalise_input("acg", fold_case=False)


def test_pretraining_heldout_slice_holds_no_training_line(tiny_model):
    """The held-out loss must measure language, not memory: held-out lines repeated from training are left out,
    and a corpus whose every held-out line is a training line is refused (it once gave loss 0.000)."""
    import pytest

    from bertology.core.models import load_tokenizer
    from bertology.errors import UserError
    from bertology.experiments.pretrain import prepare_data

    tok = load_tokenizer(str(tiny_model))
    distinct = [f"line number {i} says something new about item {i * 7 % 13}" for i in range(300)]
    repeated = distinct[:40] * 10                 # the tail repeats lines that training has
    data = prepare_data({"en": distinct + repeated[:30] + [f"fresh tail {i}" for i in range(30)]}, tok, 16,
                        heldout_fraction=0.1, progress=False)
    assert data.heldout_dropped["en"] > 0 and len(data.heldout["en"]) >= 1
    with pytest.raises(UserError, match="no held-out text that training does not also contain"):
        prepare_data({"en": [f"the same {i % 8} eight lines again" for i in range(800)]}, tok, 16,
                     heldout_fraction=0.1, progress=False)
