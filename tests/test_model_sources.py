"""Missing model folders: one error names every missing one with its repository, size and the fix; the command
line prints it without argparse's usage text."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.__main__ import main
from stereocrafter.model_sources import (
    DEPTHCRAFTER,
    STEREOCRAFTER,
    SVD,
    MissingModelsError,
    find_model_dir,
    find_model_dirs,
)


def _roots(models: Path, *sources) -> list:
    return [(source, [models / source.folder_name], None) for source in sources]


def test_every_missing_folder_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(MissingModelsError) as error:
        find_model_dirs(_roots(tmp_path, SVD, DEPTHCRAFTER, STEREOCRAFTER), download_hint="pass --download")
    message = str(error.value)
    assert message.startswith("3 model folders are missing:")
    for source in (SVD, DEPTHCRAFTER, STEREOCRAFTER):
        assert f"'{source.default_name}' was not found in {tmp_path / source.folder_name}" in message
        assert source.repo_id in message
    assert "about 3 GB" in message and "about 1.5 GB" in message and "gated" in message
    assert message.endswith("Or pass --download to fetch them.")


def test_one_missing_folder_keeps_the_single_message(tmp_path: Path) -> None:
    (tmp_path / "diffusers" / SVD.default_name).mkdir(parents=True)
    (tmp_path / "diffusers" / SVD.default_name / "model_index.json").write_text("{}")
    with pytest.raises(MissingModelsError, match=r"^'Mine' was not found in .*depthcrafter\. Put the tencent/Depth"):
        find_model_dirs(
            [(SVD, [tmp_path / "diffusers"], None), (DEPTHCRAFTER, [tmp_path / "depthcrafter"], "Mine")],
            download_hint="turn on download_missing",
        )
    found = find_model_dir(SVD, [tmp_path / "diffusers"])
    assert found == tmp_path / "diffusers" / SVD.default_name
    assert isinstance(MissingModelsError("x"), FileNotFoundError)  # callers catching FileNotFoundError still do


def test_download_fetches_only_the_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "diffusers" / SVD.default_name).mkdir(parents=True)
    (tmp_path / "diffusers" / SVD.default_name / "model_index.json").write_text("{}")
    fetched = []
    monkeypatch.setattr(
        "stereocrafter.model_sources.download_model", lambda source, target, *_: fetched.append(source) or target
    )
    paths = find_model_dirs(_roots(tmp_path, SVD, DEPTHCRAFTER), download=True)
    assert fetched == [DEPTHCRAFTER]
    assert paths == [tmp_path / "diffusers" / SVD.default_name, tmp_path / "depthcrafter" / "DepthCrafter"]


def test_cli_names_all_missing_models_without_usage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "in.mp4"
    source.write_bytes(b"")  # never read: the models are checked first
    (tmp_path / "models").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([str(source), "-o", str(tmp_path / "out.mp4"), "--models", str(tmp_path / "models")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err
    assert "error: 3 model folders are missing:" in err
    for repo in (SVD.repo_id, DEPTHCRAFTER.repo_id, STEREOCRAFTER.repo_id):
        assert repo in err
    assert "pass --download" in err
