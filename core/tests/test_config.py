"""Run config: TOML files over the embedded defaults, overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from autointerp.config import (
    LatentSettings,
    apply_override,
    describe_options,
    dump_toml,
    load_config,
    parse_value,
    raw_selections,
)
from autointerp.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_quickstart() -> None:
    config = load_config()
    assert config.name == "quickstart"
    assert config.resolved_run_dir == Path("runs/quickstart")
    assert [s.name for s in config.scorers] == ["detection", "fuzzing"]


def test_file_replaces_defaults_table_by_table(tmp_path) -> None:
    path = write(tmp_path, 'name = "mine"\n[explainer]\nname = "contrastive"\ntemperature = 0.7\n')
    config = load_config(path)
    assert config.explainer.name == "contrastive"
    assert config.explainer.options == {"temperature": 0.7}
    assert config.model.name == "transformers"  # untouched default
    assert config.resolved_run_dir == Path("runs/mine")


def test_set_overrides_parse_values_as_toml(tmp_path) -> None:
    path = write(tmp_path, '[explainer]\nname = "default"\n')
    config = load_config(
        path,
        [
            "explainer.temperature=0.3",
            "explainer.style=terse",
            "scorers.1.n_examples=7",
            "model.layers=[1, 2]",
            "seed=5",
        ],
    )
    assert config.explainer.options == {"temperature": 0.3, "style": "terse"}
    assert config.scorers[1].options == {"n_examples": 7}
    assert config.model.options == {"layers": [1, 2]}
    assert config.seed == 5


def test_selection_flags_replace_component_and_drop_its_options(tmp_path) -> None:
    path = write(tmp_path, '[explainer]\nname = "default"\ntemperature = 0.2\n')
    kept = load_config(path, selections={"explainer": "default"})
    assert kept.explainer.options == {"temperature": 0.2}
    swapped = load_config(path, selections={"explainer": "other", "scorers": ["embedding"]})
    assert swapped.explainer.options == {}
    assert [s.name for s in swapped.scorers] == ["embedding"]


def test_unknown_top_level_field_names_file_and_suggests(tmp_path) -> None:
    path = write(tmp_path, "sead = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: sead: unknown field; did you mean 'seed'? (got 3)"


def test_bad_value_names_field_path_and_expectation(tmp_path) -> None:
    path = write(tmp_path, 'seed = "many"\nthreads = 0\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{path}: seed: Input should be a valid integer")
    assert lines[1].startswith(f"{path}: threads: Input should be greater than or equal to 1")
    assert "'many'" in lines[0]


def test_missing_component_name(tmp_path) -> None:
    # a table without `name` keeps the default component (issue #20); [executor] has no default
    path = write(tmp_path, "[executor]\nworkers = 2\n")
    with pytest.raises(ConfigError, match=r"my\.toml: executor\.name: field required"):
        load_config(path)


def test_bad_toml_syntax_gives_line_and_column(tmp_path) -> None:
    path = write(tmp_path, "[explainer\nname = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 1" in message and "\n" not in message


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        load_config(Path("nope.toml"))


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("explainer", "expected FIELD.PATH=VALUE"),
        ("scorers.9.k=1", "has 2 items; '9' is not a valid index"),
        ("seed.x=1", "'seed' is not a table"),
    ],
)
def test_bad_overrides(assignment, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [assignment])


def test_override_on_string_shorthand_becomes_table() -> None:
    data = {"model": "transformers"}
    apply_override(data, "model.dtype=float32")
    assert data == {"model": {"name": "transformers", "dtype": "float32"}}


def test_parse_value() -> None:
    assert parse_value("3") == 3
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("gpt-4o-mini") == "gpt-4o-mini"
    assert parse_value('"quoted"') == "quoted"


def test_dump_round_trips(tmp_path) -> None:
    config = load_config(
        None, ['explainer.prompt="a \\"quoted\\" word"', "model.layers=[3, 4]", "threads=2"]
    )
    path = write(tmp_path, dump_toml(config.as_table()))
    assert load_config(path) == config


def test_a_mode_preset_fills_only_the_options_left_unset() -> None:
    from typing import ClassVar

    from autointerp.config import ComponentConfig, validate_options

    class Batched(ComponentConfig):
        presets: ClassVar = {"economy": {"batch_size": 0, "structured": True}}
        batch_size: int = 5
        structured: bool = False

    assert validate_options(Batched, {}, where="x").batch_size == 5  # parity: field defaults
    economy = validate_options(Batched, {}, where="x", mode="economy")
    assert (economy.batch_size, economy.structured) == (0, True)
    mine = validate_options(Batched, {"batch_size": 20}, where="x", mode="economy")
    assert (mine.batch_size, mine.structured) == (20, True)


def test_an_unknown_mode_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"defaults: mode: .*'parity', 'economy' or 'small-llm'"):
        load_config(overrides=["mode=cheap"])


@pytest.mark.parametrize(
    "assignment",
    [
        "llm.api_key={key}",
        'llm.api_key_env="{key}"',
        'llm.extra_body={{"authorization"="Bearer {key}"}}',
        'name="{key}"',
    ],
)
def test_an_api_key_anywhere_in_a_config_is_refused_and_never_echoed(assignment: str) -> None:
    key = "sk-proj-planted0123456789abcdefghijKLMN"
    with pytest.raises(ConfigError) as info:
        load_config(None, [assignment.format(key=key)])
    message = str(info.value)
    assert "looks like an API key" in message and key[8:] not in message
    assert len(message.splitlines()) == 1


def test_validation_errors_redact_key_shaped_values() -> None:
    with pytest.raises(ConfigError) as info:  # a key in a field that wants a number
        load_config(None, ['llm.timeout_s="sk-ant-0123456789abcdefXYZ"'])
    assert "0123456789abcdef" not in str(info.value)


# -- merging tables, every problem at once, describing options (issue #20) -------------------------


def test_a_table_without_name_keeps_the_default_component_and_adds_options(tmp_path) -> None:
    path = write(tmp_path, "[explainer]\ntemperature = 0.3\n[llm]\nname = 'local'\nparallel = 1\n")
    config = load_config(path)
    assert config.explainer.name == "default" and config.explainer.options == {"temperature": 0.3}
    assert config.llm.name == "local" and config.llm.options == {"parallel": 1}


def test_a_table_naming_another_component_replaces_the_default(tmp_path) -> None:
    path = write(tmp_path, "[explainer]\nname = 'contrastive'\nmax_negatives = 2\n")
    config = load_config(path)
    assert config.explainer.name == "contrastive" and config.explainer.options == {
        "max_negatives": 2
    }


def test_every_problem_is_reported_at_once_one_line_each(tmp_path) -> None:
    path = write(
        tmp_path,
        "sead = 3\nthreads = 0\n[latents]\nn_trian = 2\n"
        '[llm]\napi = "sk-abcdefghijklmnopqrstuvwxyz123456"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines[0] == (
        f"{path}: llm.api: holds what looks like an API key; never put keys in a config (it is "
        "saved with the run): set the provider's variable (e.g. $OPENAI_API_KEY) or add it to "
        "~/.config/autointerp/keys.toml"
    )
    assert f"{path}: sead: unknown field; did you mean 'seed'? (got 3)" in lines
    assert f"{path}: latents.n_trian: unknown field; did you mean 'n_train'? (got 2)" in lines
    assert any(line.startswith(f"{path}: threads: Input should be greater") for line in lines)
    assert len(lines) == 4 and "sk-abc" not in str(info.value)


def test_raw_selections_skip_the_malformed_ones() -> None:
    data = {"explainer": {"temperature": 1}, "llm": "local", "scorers": [{"name": "a", "n": 1}, 3]}
    found = raw_selections(data)
    assert [(where, kind, s.name, s.options) for where, kind, s in found] == [
        ("llm", "llm_client", "local", {}),
        ("scorers[0]", "scorer", "a", {"n": 1}),
    ]


def test_describe_options_of_the_run_config_tables() -> None:
    rows = {r["name"]: r for r in describe_options(LatentSettings)}
    assert rows["negatives"]["type"] == "'random' | 'similar' | 'mixed'"
    assert rows["negatives"]["default"] == "random"
    assert rows["n"]["bounds"] == [">= 1"] and rows["indices"]["type"] == "list[int] | None"
    assert "modes" not in rows["n"]
