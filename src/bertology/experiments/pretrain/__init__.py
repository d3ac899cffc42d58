"""Masked-LM pretraining from scratch, one concern a module, read in this order:

- `tokenizer.py`: the WordPiece vocabulary learnt from the corpora;
- `data.py`: packing, the leak-free held-out slice, the training batches;
- `objective.py`: masking (80/10/10; token, whole-word or span) and the masked-only MLM loss;
- `run.py`: `pretrain(cfg)`, the model it builds, and its exports.

The names below are re-exported so that `from bertology.experiments.pretrain import pretrain` keeps working;
fill-mask lives in `experiments/mlm.py` (re-exported here for old imports).
"""

from ..mlm import FILL_MASK_SCHEMA, FillMaskResult, fill_mask, fill_mask_text
from .data import PackedData, PackedMLMBatches, pack_lines, prepare_data, unigram_baseline
from .objective import MaskedLMObjective, Masker, evaluate_mlm, make_masker, mask_generator, mlm_head, mlm_loss
from .run import (MODEL_TYPES, PRESETS, SCHEMA, PretrainConfig, PretrainResult, check_model_type, export_model,
                  load_corpora, make_mlm, model_config, pretrain, train_tokenizer)
from .tokenizer import (SPECIAL_TOKENS, TOKENIZER_SCHEMA, TokenizerResult, approx_tokens, learn_tokenizer,
                        smoothed_shares)

__all__ = ["FILL_MASK_SCHEMA", "FillMaskResult", "fill_mask", "fill_mask_text", "PackedData", "PackedMLMBatches",
           "pack_lines", "prepare_data", "unigram_baseline", "MaskedLMObjective", "Masker", "evaluate_mlm",
           "make_masker", "mask_generator", "mlm_head", "mlm_loss", "MODEL_TYPES", "PRESETS", "SCHEMA",
           "PretrainConfig", "PretrainResult", "check_model_type", "export_model", "load_corpora", "make_mlm",
           "model_config", "pretrain", "train_tokenizer", "SPECIAL_TOKENS", "TOKENIZER_SCHEMA", "TokenizerResult",
           "approx_tokens", "learn_tokenizer", "smoothed_shares"]
