"""Training output people would show someone: curves drawn by matplotlib, tqdm progress with
an ETA, Ctrl-C as one line (exit code 130, no temp files), --help with every flag and each
model's defaults, and --resume warning about flags that contradict the saved run."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from models.plotting import plot_curves
from models.train import CONFIGS, ProgressBar, build_parser, main


def test_curves_are_drawn_by_matplotlib_with_accuracy_in_percent(tmp_path):
    history = {"train_loss": [2.0, 1.0, 0.5], "test_loss": [2.1, 1.2, 0.7],
               "test_acc": [0.3, 0.6, 0.9], "lr": [0.1] * 3}  # fmt: skip
    path = tmp_path / "curves.png"
    plot_curves(history, path, "mlp on digits")
    image = Image.open(path)
    assert image.info.get("Software", "").startswith("Matplotlib")
    assert image.size == (1000, 400)
    assert os.listdir(tmp_path) == ["curves.png"]  # no temp file left


def test_progress_bar_shows_steps_and_the_runs_eta_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar(10, "epoch 2/5", stream, run_eta=90.0)
    for i in (1, 5, 10):
        time.sleep(0.15)  # past tqdm's refresh interval
        bar.update(i, 0.5)
    bar.close()
    text = stream.getvalue()
    assert "epoch 2/5" in text and "5/10" in text and "step/s" in text
    assert "run ETA=01:3" in text and "loss=0.5000" in text


def test_help_documents_every_flag_with_each_models_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per flag: nothing wrapped mid-name
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    for name, config in CONFIGS.items():
        assert f"{name} {config.epochs}" in text  # --epochs per model
    assert "mlp 0.1" in text and "alexnet-mini 0.01" in text  # --lr per model


def test_resume_with_a_contradicting_flag_warns_and_says_which_wins(tmp_path, capsys):
    out = str(tmp_path)
    main(["logreg", "--epochs", "1", "--lr", "0.02", "--out", out])
    capsys.readouterr()
    main(["logreg", "--epochs", "2", "--momentum", "0.5", "--resume", "--out", out])
    err = capsys.readouterr().err
    assert "warning: --momentum 0.5 contradicts the saved run's momentum=0.9" in err
    assert "--momentum 0.5 wins" in err
    assert "warning: --epochs 2 contradicts the saved run's epochs=1" in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["lr"] == [0.02, 0.02]  # --lr not given again: the saved run's value


def test_ctrl_c_mid_epoch_prints_one_line_exits_130_and_leaves_no_temp_files(tmp_path):
    cmd = [sys.executable, "-m", "models.train", "mlp", "--epochs", "400", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "checkpoint.npz").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.15)  # into the second epoch (or its writes)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.fullmatch(r"interrupted at epoch \d+, step \d+; resume with --resume", lines[0])
    assert "epoch   1" in stdout
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".") or "tmp" in n]
    assert leftovers == []


@pytest.mark.parametrize("flag", ["--epochs", "--lr", "--resume", "--compiled"])
def test_every_flag_is_in_the_usage(flag):
    assert flag in build_parser().format_usage()


def test_curves_are_redrawn_at_most_every_few_seconds_and_after_the_last_epoch(
    tmp_path, monkeypatch
):
    """metrics.json after every epoch; curves.png (0.7 s a drawing) on the first epoch, then
    only when PLOT_EVERY_S has passed, and always after the last."""
    from dataclasses import replace

    from models import plotting, train

    drawn: list[int] = []
    monkeypatch.setattr(plotting, "plot_curves", lambda h, path, title: drawn.append(len(h["lr"])))
    monkeypatch.setattr(train, "PLOT_EVERY_S", 3600.0)
    config = replace(CONFIGS["logreg"], epochs=4)
    train.train(config, str(tmp_path), log=lambda s: None)
    assert drawn == [1, 4]
    assert len(json.loads((tmp_path / "metrics.json").read_text())["lr"]) == 4
    monkeypatch.setattr(train, "PLOT_EVERY_S", 0.0)
    drawn.clear()
    train.train(replace(config, epochs=6), str(tmp_path), resume=True, log=lambda s: None)
    assert drawn == [5, 6]
