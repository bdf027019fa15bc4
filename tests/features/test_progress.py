"""Extraction progress goes to one channel: a tqdm bar on a terminal, else a log line per tenth."""

from __future__ import annotations

import logging

import pytest
from fakes import Stream

from deepfake_kedro.features import engine, iter_features


def run(manifest, store, extractor, config, monkeypatch, caplog, *, tty: bool, progress: bool):
    stderr = Stream(tty)
    monkeypatch.setattr("sys.stderr", stderr)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=engine.__name__):
        for _ in iter_features(manifest, store, extractor, config.model_copy(update={"progress": progress})):
            pass
    lines = [r.getMessage() for r in caplog.records if "images (" in r.getMessage()]
    return lines, stderr.getvalue()


def test_not_a_terminal_logs_every_tenth_and_draws_no_bar(
    manifest, store, extractor, config, monkeypatch, caplog
):
    lines, bar = run(manifest, store, extractor, config, monkeypatch, caplog, tty=False, progress=True)
    # 41 rows in batches of 8: a line at the first batch past each tenth (5 rows), none at the end
    assert [line.split(" images")[0] for line in lines] == [
        "resnet: 8/41", "resnet: 16/41", "resnet: 24/41", "resnet: 32/41", "resnet: 40/41"
    ]
    assert bar == ""


def test_a_terminal_draws_the_bar_and_logs_no_progress_lines(
    manifest, store, extractor, config, monkeypatch, caplog
):
    lines, bar = run(manifest, store, extractor, config, monkeypatch, caplog, tty=True, progress=True)
    assert lines == []
    assert "resnet features" in bar and "41/41" in bar
    # the summary line is still logged once
    assert sum("extracted 41 images" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("tty", [True, False])
def test_progress_off_logs_lines_on_a_terminal_too(
    manifest, store, extractor, config, monkeypatch, caplog, tty
):
    lines, bar = run(manifest, store, extractor, config, monkeypatch, caplog, tty=tty, progress=False)
    assert len(lines) == 5 and bar == ""
