"""Settings are declared once (bertology.config): every CLI option is generated from a config field, so the
two cannot drift. Here each option of each command is compared with its field (name, default, help, choices,
bounds), and a value out of bounds is refused at construction and by the CLI, naming the flag."""

from __future__ import annotations

import dataclasses
import math

import pytest
import typer

from bertology.cli import app, main
from bertology.cli_options import cli_fields
from bertology.config import PRECISIONS, flag_of, is_setting
from bertology.errors import UserError


def _commands():
    """(command path, click command, its config class) for every command generated from a config."""
    group = typer.main.get_command(app)
    configs = {c.name: getattr(c.callback, "config", None) for c in app.registered_commands}
    for sub in app.registered_groups:
        configs |= {f"{sub.name} {c.name}": getattr(c.callback, "config", None)
                    for c in sub.typer_instance.registered_commands}
    out = []
    for path, config in configs.items():
        cmd = group
        for part in path.split():
            cmd = cmd.commands[part]
        if config is not None:
            out.append((path, cmd, config))
    return out


COMMANDS = _commands()


def test_every_command_but_models_is_generated_from_a_config():
    generated = {path for path, _, _ in COMMANDS}
    assert generated == {"senses", "cbow", "report", "tokenizer train", "pretrain", "fill-mask", "cloze",
                         "crossdomain", "qa score", "qa train", "qa predict", "qa eval", "qa crosslingual",
                         "align", "langvec", "align-scale", "serve"}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return None
    if f.metadata.get("sep") and value is not None:
        return f.metadata["sep"].join(str(v) for v in value)
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("path,cmd,config", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_each_option_is_its_config_field(path, cmd, config):
    params = {p.name: p for p in cmd.params if p.name != "help"}
    fields = {f.name: f for f in cli_fields(config)}
    assert set(params) <= set(fields), set(params) - set(fields)       # no option without a field
    for name, p in params.items():
        f = fields[name]
        if isinstance(p, typer.core.TyperOption):
            assert flag_of(config, name) in p.opts, (name, p.opts)        # the flag the config says
            assert p.help and p.help == f.metadata["help"], name           # its help, from the field
            for choice in f.metadata.get("choices") or ():                 # the choices are said in the help
                assert str(choice) in p.help, (name, choice)
        if getattr(p, "min", None) is not None or getattr(p, "max", None) is not None:
            assert (p.min, p.max) == (f.metadata["low"], f.metadata["high"]), name   # the field's bounds
        assert p.required == (_default(f) is None and f.default is dataclasses.MISSING
                              and f.default_factory is dataclasses.MISSING), name
        if not p.required:
            assert p.default == _default(f), (name, p.default, _default(f))


@pytest.mark.parametrize("path,cmd,config", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_shared_settings_have_one_name(path, cmd, config):
    """`max_length`, `max_steps`, `threads`, `seed`, `precision`: one field name and flag everywhere."""
    names = {f.name for f in dataclasses.fields(config) if is_setting(f)}
    assert not names & {"seq_len", "max_len", "steps", "num_threads"}, names
    runs_a_model = "model" in names and path != "qa score"
    if runs_a_model:
        assert {"precision", "threads"} <= {p.name for p in cmd.params}, path


def test_a_setting_out_of_bounds_is_refused_at_construction_naming_the_field():
    from bertology.experiments.configs import AlignConfig
    from bertology.experiments.pretrain import PretrainConfig
    from bertology.experiments.qa import QASettings

    with pytest.raises(UserError) as e:
        PretrainConfig(corpora=["en=x"], out_dir="o", max_length=4)
    assert e.value.fields == ("max_length",) and flag_of(PretrainConfig, "max_length") == "--max-length"
    with pytest.raises(UserError, match="`precision` must be one of fp32, bf16"):
        PretrainConfig(corpora=["en=x"], out_dir="o", precision="fp8")
    with pytest.raises(UserError, match="`lr` must be"):
        PretrainConfig(corpora=["en=x"], out_dir="o", lr=math.nan)
    with pytest.raises(UserError, match="`batch_size` must be a whole number"):      # a count is whole
        PretrainConfig(corpora=["en=x"], out_dir="o", batch_size=2.5)
    with pytest.raises(UserError, match="`verify_margin`"):
        QASettings(verify_margin=math.nan)
    assert QASettings(verify_margin=math.inf).verify_margin == math.inf          # inf is meaningful there
    with pytest.raises(UserError, match="`layers`"):
        AlignConfig(corpus=["en=x"], out="o", layers="")
    assert flag_of(AlignConfig, "layer") == "--layers"                             # the library's name, aliased
    assert flag_of(PretrainConfig, "corpora") == "--corpus"
    assert PRECISIONS == ("fp32", "bf16")


@pytest.mark.parametrize("argv,flag", [
    (["senses", "-s", "apple-en", "-o", "{tmp}", "--precision", "fp8"], "--precision"),
    (["pretrain", "-c", "en=x", "-o", "{tmp}", "--max-length", "4"], "--max-length"),
    (["pretrain", "-c", "en=x", "-o", "{tmp}", "--seq-len", "4"], "--max-length"),     # the old spelling
    (["qa", "eval", "-d", "x", "-o", "{tmp}", "--span-score", "best"], "--span-score"),
    (["crossdomain", "-o", "{tmp}", "--conditions", "pretrained,nope"], "--conditions"),
    (["cbow", "-c", "x", "-o", "{tmp}", "--segment", "bpe"], "--segment"),
    (["align", "-c", "en=x", "-o", "{tmp}", "--convert", "zz"], "--convert"),
    (["fill-mask", "a [MASK]", "--threads", "0"], "--threads"),
])
def test_a_bad_value_exits_2_naming_the_flag(argv, flag, tmp_path, capsys):
    code = main([a.replace("{tmp}", str(tmp_path / "out")) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("bertology: error: "), err
    assert flag in err[0], err[0]


def test_help_imports_no_torch():
    """`bertology --help` builds every command's options from the configs: they live in torch-free modules
    (experiments/configs.py, report, serve), so the help and a usage error answer without loading torch."""
    import subprocess
    import sys

    code = "import bertology.cli, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_resume_of_a_checkpoint_from_before_the_rename_still_checks_the_length(tmp_path):
    """seq_len (pretrain) and max_len (qa) are max_length now: a checkpoint whose run_settings.json has the old
    key is still refused at another length, and resumed at the same one."""
    import json

    from bertology.io import rundir

    run = tmp_path / "run"
    (run / rundir.CHECKPOINT).mkdir(parents=True)
    for name in ("state.pt", "model.safetensors"):
        (run / rundir.CHECKPOINT / name).write_bytes(b"")
    for old in ("seq_len", "max_len"):
        (run / rundir.RUN_SETTINGS).write_text(json.dumps({old: 64, "lr": 0.1}))
        with pytest.raises(UserError, match="`max_length` 64 \\(now 32\\)"):
            rundir.check_resume(run, {"max_length": 32, "lr": 0.1}, resume=True)
        rundir.check_resume(run, {"max_length": 64, "lr": 0.1}, resume=True)
