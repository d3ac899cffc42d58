"""Extractive question answering, and the lecture's cross-lingual result: fine-tune on English SQuAD, answer
Chinese questions (multilingual BERT: 78.8 F1 on DRCD without seeing one Chinese training example).
Modules: features (windows), predict (logits, script conversion), postprocess (answer extraction, n-best),
scoring (official EM / F1), run (training and the commands' orchestration; run_crosslingual, on a
configs.QACrosslingualConfig, is the cross-lingual experiment every front end runs).

The pipeline follows Hugging Face's run_qa.py, on the shared training engine:
1. features: each (question, context) pair is tokenised into windows of `max_length` tokens that overlap by
   `doc_stride` tokens (`return_overflowing_tokens` + offset mappings), so long contexts are fully covered.
   Training labels the answer's first/last token in the window that contains the whole answer; windows that
   do not contain it point at [CLS] (index 0), as in BERT's SQuAD recipe.
2. training: `engine.train` with length-bucketed, dynamically padded batches, bf16, resume, early stopping
   on dev F1.
3. prediction: the start/end logits of every window; every span of at most `max_answer_len` tokens inside
   the context part of any window is scored start_logit + end_logit (an exact search, not just the top-k
   starts × top-k ends); the `n_best` spans are kept; the best one's character offsets cut the answer out of
   the *original* context, so answers are exact substrings (no detokenisation artefacts, accents and
   Chinese intact).
4. scoring: the official SQuAD v1.1 (English) or CMRC 2018 (Chinese; also DRCD) EM / F1, in metrics.py.

Speed: windows are sorted by length and padded per batch, inference runs under `torch.inference_mode`
with optional bf16 autocast, and span search is vectorised with numpy (bench/qa_predict.py measures it
against the Hugging Face question-answering pipeline).
"""

from dataclasses import asdict   # noqa: F401 - cli.py writes qa.asdict(settings)

from ...io.squad import QADataset, QAExample   # the data a QA experiment reads
from .features import (EvalFeatures, QASettings, check_settings, eval_features, fit_to_model, train_features,
                       validate_settings)
from .postprocess import Predictions, add_spans, answer_margins, needs_fp32, rank_answers, top_spans
from .predict import answer, convert_dataset, conversion_changes, pad_id, predict, predict_converted, window_logits
from .run import (LECTURE_DRCD_F1, SCHEMA, QAResult, QATrainResult, TrainSettings, check_train_settings,
                  crosslingual, eval_sets, evaluate_model, evaluate_sets, load_data, load_qa_model, load_sets,
                  measure_transfer, predict_file, predictions_path, run_crosslingual, save, train, write_predictions)
from .scoring import (QAScore, detect_lang, load_predictions, overlap_heuristic_answer, per_question_f1,
                      resolve_lang, score, transfer_measures)

__all__ = [
    "QADataset", "QAExample", "EvalFeatures", "QASettings", "check_settings", "eval_features", "fit_to_model", "train_features",
    "validate_settings", "Predictions", "add_spans", "answer_margins", "needs_fp32", "rank_answers", "top_spans",
    "answer", "convert_dataset", "conversion_changes", "pad_id", "predict", "predict_converted", "window_logits",
    "LECTURE_DRCD_F1", "SCHEMA", "QAResult", "QATrainResult", "TrainSettings", "check_train_settings",
    "crosslingual", "eval_sets", "evaluate_model", "evaluate_sets", "load_data", "load_qa_model", "load_sets",
    "measure_transfer", "predict_file", "predictions_path", "run_crosslingual", "save", "train", "write_predictions",
    "QAScore",
    "detect_lang", "load_predictions", "overlap_heuristic_answer", "per_question_f1", "resolve_lang", "score",
    "transfer_measures",
]
