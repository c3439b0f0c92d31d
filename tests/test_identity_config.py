"""Which matching.yml ``load_config()`` reads: the marketer's saved edit wins when present."""

from pathlib import Path

import pytest
import yaml

from cdp_pipeline.identity.config import (
    DEFAULT_CONFIG_PATH,
    active_config_path,
    edited_config_path,
    load_config,
)


@pytest.fixture
def settings_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "warehouse" / "cdp.duckdb"))
    return tmp_path


def test_packaged_config_without_an_edit(settings_root: Path) -> None:
    assert edited_config_path() == settings_root / "state" / "identity" / "matching.yml"
    assert active_config_path() == DEFAULT_CONFIG_PATH
    packaged = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    assert load_config().max_profile_size == packaged["max_profile_size"]


def test_edited_config_in_state_dir_wins(settings_root: Path) -> None:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    data["max_profile_size"] = 17
    data["thresholds"] = {"match_weight": 9.5}
    edited = settings_root / "state" / "identity" / "matching.yml"
    edited.parent.mkdir(parents=True)
    edited.write_text(yaml.safe_dump(data), encoding="utf-8")

    config = load_config()
    assert active_config_path() == edited
    assert config.max_profile_size == 17
    assert config.thresholds.auto_merge_weight() == 9.5
    # An explicit path still reads exactly that file.
    assert load_config(DEFAULT_CONFIG_PATH).max_profile_size != 17


def test_invalid_edited_config_names_the_file_and_key(settings_root: Path) -> None:
    edited = settings_root / "state" / "identity" / "matching.yml"
    edited.parent.mkdir(parents=True)
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    data["guards"]["different_first_name"] = "sometimes"
    edited.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"state/identity/matching.yml[\s\S]*different_first_name"):
        load_config()
