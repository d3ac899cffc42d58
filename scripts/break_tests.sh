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
