"""Property-based test of every data loader (issue 14): whatever the bytes of the file, a loader returns valid
data or raises the toolkit's `UserError` (exit 2 with a message), never anything else (a traceback).

The files are drawn at random: raw bytes, text lines of tab- / comma-separated fields, JSON values of any
shape, SQuAD-shaped JSON with random leaves, each optionally gzipped and optionally cut short.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bertology.errors import UserError  # noqa: E402
from bertology.experiments.cloze import read_cloze_items  # noqa: E402
from bertology.experiments.qa import load_predictions  # noqa: E402
from bertology.io.corpora import read_corpora  # noqa: E402
from bertology.io.dictionaries import load_cedict, load_muse_dictionary  # noqa: E402
from bertology.io.sentences import read_sentences  # noqa: E402
from bertology.io.sequences import load_sequences  # noqa: E402
from bertology.io.squad import load_squad  # noqa: E402
from bertology.io.storage import load_results  # noqa: E402


def _sentences_ok(r):
    sents, labels, _ = r
    return len(sents) == len(labels) > 0 and all(isinstance(s, str) and s for s in sents)


def _squad_ok(ds):
    return all(isinstance(e.context, str) and isinstance(e.question, str) for e in ds.examples)


# loader name -> (call on a path, what valid data looks like)
LOADERS = {
    "sentences": (read_sentences, _sentences_ok),
    "corpus": (lambda p: read_corpora([f"en={p}"]),
               lambda r: all(isinstance(x, str) and x for x in r["en"]) and r["en"]),
    "sequences": (load_sequences, lambda r: len(r) > 0),
    "squad": (load_squad, _squad_ok),
    "squad-skip-bad": (lambda p: load_squad(p, skip_bad=True), _squad_ok),
    "squad-questions": (lambda p: load_squad(p, require_answers=False), _squad_ok),
    "squad-scored": (lambda p: load_squad(p, check_offsets=False), _squad_ok),
    "muse": (load_muse_dictionary, lambda d: all(isinstance(a, str) and isinstance(b, str) for a, b in d.pairs)),
    "cedict": (load_cedict, lambda d: all(isinstance(a, str) and isinstance(b, str) for a, b in d.pairs)),
    "predictions": (load_predictions, lambda r: all(isinstance(v, str) for v in r.values())),
    "cloze": (read_cloze_items, lambda r: len(r) > 0),
    "results": (load_results, lambda r: isinstance(r, dict)),
}

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_field = st.one_of(_text, st.sampled_from(["label", "sentence", "lang", "answer", "[MASK]", "the [MASK] is",
                                           "en", "A", "ACGT", "EI", ">x y", "", " ", "1", "-1", "蘋果"]))
_table = st.lists(st.lists(_field, max_size=5), max_size=8).flatmap(
    lambda rows: st.sampled_from(["\t", ",", " "]).map(
        lambda sep: "\n".join(sep.join(r) for r in rows).encode("utf-8")))
_json_value = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False)
                           | _text, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(_field, inner, max_size=3), max_leaves=12)
_leaf = st.one_of(_json_value, _field, st.integers(-3, 40))
_squad = st.builds(
    lambda ctx, qid, q, text, start, extra: {"data": [{"paragraphs": [{"context": ctx, "qas": [
        {"id": qid, "question": q, "answers": [{"text": text, "answer_start": start}], **extra}]}]}]},
    _leaf, _leaf, _leaf, _leaf, _leaf, st.dictionaries(st.sampled_from(["is_impossible", "answers"]), _leaf,
                                                       max_size=1))
_content = st.one_of(st.binary(max_size=300), _table,
                     _json_value.map(lambda v: json.dumps(v).encode()),
                     _squad.map(lambda v: json.dumps(v, ensure_ascii=False).encode()))
_file = st.tuples(_content, st.sampled_from([".txt", ".tsv", ".csv", ".json", ".fasta", ".u8", ".txt.gz",
                                             ".json.gz"]), st.one_of(st.none(), st.integers(0, 200)))


def _write(tmp: Path, content: bytes, suffix: str, cut) -> Path:
    if suffix.endswith(".gz"):
        content = gzip.compress(content)
    if cut is not None:           # a file cut short, as an interrupted download leaves it
        content = content[:cut]
    path = tmp / f"input{suffix}"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", list(LOADERS))
def test_loader_returns_valid_data_or_user_error(name):
    load, valid = LOADERS[name]

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_file)
    def check(f):
        with tempfile.TemporaryDirectory() as tmp:
            path = _write(Path(tmp), *f)
            try:
                result = load(path)
            except UserError as e:
                assert str(e).strip()
                return
            assert valid(result), result

    check()
