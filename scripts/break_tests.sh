#!/bin/bash
# Each of these tests must go red on a deliberately broken build (issue 17). Applies one break at a time to a copy of src
# and runs the tests that should catch it; prints RED (caught) or GREEN (missed).
cd "$(dirname "$0")/.."
run() {  # name, file, python-replace-old, python-replace-new, tests...
  name=$1; file=$2; old=$3; new=$4; shift 4
  rm -rf /tmp/brk && cp -r src /tmp/brk
  python3 - "$file" "$old" "$new" <<'PY'
import sys
p = "/tmp/brk/" + sys.argv[1]; s = open(p).read(); old, new = sys.argv[2], sys.argv[3]
assert s.count(old) == 1, (p, old); open(p, "w").write(s.replace(old, new))
PY
  if PYTHONPATH=/tmp/brk OMP_NUM_THREADS=1 timeout 900 .venv/bin/python -m pytest -q -x -p no:cacheprovider "$@" > /tmp/brk.log 2>&1; then
    echo "GREEN (missed): $name"; tail -2 /tmp/brk.log
  else
    echo "RED (caught): $name — $(grep -m1 -E '^FAILED|Error' /tmp/brk.log)"
  fi
}
run "loss normalisation" bertology/core/engine.py "(loss * weight if weight != 1.0 else loss).backward()" "loss.backward()" \
    tests/test_engine.py::test_grad_accum_normalises_by_the_whole_accumulated_batch tests/test_engine.py::test_grad_accum_with_the_pretraining_objective \
    tests/test_pretrain.py::test_two_processes_batch_b_match_one_process_batch_2b
run "RNG restore" bertology/core/engine.py '        _set_rng_state(saved["rng"])' '        pass' \
    tests/test_pretrain.py::test_resume_after_sigkill_matches_uninterrupted_run tests/test_pretrain.py::test_bf16_compiled_run_with_dropout_resumes_bit_identically
run "identical-pair skip (align)" bertology/experiments/align.py "                ts = [t for t in ts if t.lower() != s.lower()]" "                pass" \
    tests/test_align.py::test_align_skips_identical_pairs_between_languages_of_one_script
run "identical-pair skip (langvec)" bertology/experiments/langvec.py "t.lower() != w.lower() and has_cjk(t) == tgt_cjk" "has_cjk(t) == tgt_cjk" \
    tests/test_align.py::test_langvec_ignores_identical_pairs_between_languages_of_one_script
# The verdict rules (issue 23): each rule a sceptic's check overturned must stay enforced
run "senses: position-only purity ignored" bertology/report/claims.py '          and m["purity"] - m["position_purity"] >= 0.10)' '          )' \
    tests/test_claims.py::test_senses_not_shown_when_position_alone_separates_the_labels
run "align: layer 0 not a baseline" bertology/experiments/align.py '    base = {"layer 0": ctx[0, test], ' '    base = {' \
    tests/test_claims.py::test_alignment_equal_to_layer_zero_is_not_shown
run "controls: the inverted rule (against scratch)" bertology/report/claims.py 'diff, margin, ci, p, verdict = _paired(m, "pretrained", "shuffled", {})' 'diff, margin, ci, p, verdict = _paired(m, "shuffled", "scratch", {})' \
    tests/test_claims.py::test_controls_need_pretrained_above_shuffled_not_shuffled_near_scratch
run "langvec: constant baseline dropped" bertology/experiments/langvec.py '    rival = const_hits if const_hits[test].mean() > unshifted[test].mean() else unshifted' '    rival = unshifted' \
    tests/test_claims.py::test_a_constant_output_is_never_shown_as_translation
run "transfer: a missing paired test passes" bertology/report/claims.py '        return diff, margin, None, None, NOT_RUN' '        return diff, margin, None, None, SHOWN' \
    tests/test_claims.py::test_transfer_needs_the_paired_test_and_the_baselines
run "splits: duplicates not joined" bertology/io/splits.py '    for column in ([keys] + ([groups] if groups is not None else [])):' '    for column in ([groups] if groups is not None else []):' \
    tests/test_splits.py::test_planted_duplicates_never_cross_parts_and_are_counted
