"""Training from the CLI: accuracy targets on digits, resume equals an uninterrupted run,
checkpoints survive being killed mid-write, outputs are written, bad CLI input is refused."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from models.train import CONFIGS, main, train
from tinygrad_edu import nn


def quiet(_line: str) -> None:
    pass


def test_logistic_regression_reaches_95_percent(tmp_path):
    history = train(CONFIGS["logreg"], str(tmp_path), log=quiet)
    assert history["test_acc"][-1] >= 0.95


def test_mlp_reaches_97_percent(tmp_path):
    """The README's main command (compiled, llvm): 40 epochs in seconds where eager takes 30."""
    history = train(CONFIGS["mlp"], str(tmp_path), log=quiet, compiled=True, backend="llvm")
    assert history["test_acc"][-1] >= 0.97


@pytest.mark.slow
def test_alexnet_mini_reaches_97_percent(tmp_path):
    history = train(CONFIGS["alexnet-mini"], str(tmp_path), log=quiet)
    assert history["test_acc"][-1] >= 0.97


def test_alexnet_mini_smoke_two_epochs_learn(tmp_path):
    """The default-run stand-in for the slow test: two epochs lift accuracy well past chance."""
    config = replace(CONFIGS["alexnet-mini"], epochs=2, lr=0.02)
    history = train(config, str(tmp_path), log=quiet)
    assert history["train_loss"][1] < history["train_loss"][0]
    assert history["test_acc"][-1] > 0.3


def test_resume_gives_the_same_numbers_as_an_uninterrupted_run(tmp_path):
    config = replace(CONFIGS["mlp"], epochs=4)
    straight = train(config, str(tmp_path / "a"), log=quiet)
    train(replace(config, epochs=2), str(tmp_path / "b"), log=quiet)
    resumed = train(config, str(tmp_path / "b"), resume=True, log=quiet)
    for key in ("train_loss", "test_loss", "test_acc", "lr"):
        assert resumed[key] == straight[key]
    a, b = nn.load(tmp_path / "a" / "model.npz"), nn.load(tmp_path / "b" / "model.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # 18 s; test_resume_gives_the_same_numbers_as_an_uninterrupted_run stays
def test_resume_of_a_dropout_model_is_bit_identical(tmp_path):
    """AlexNet-mini has dropout: resuming must restore the generator state, not only weights."""
    # compiled: the same generator draws the masks as in eager code, at a tenth of the time
    config = replace(CONFIGS["alexnet-mini"], epochs=2)
    run = dict(log=quiet, compiled=True, backend="llvm")
    straight = train(config, str(tmp_path / "a"), **run)
    train(replace(config, epochs=1), str(tmp_path / "b"), **run)
    resumed = train(config, str(tmp_path / "b"), resume=True, **run)
    assert resumed["train_loss"] == straight["train_loss"]


def test_outputs_are_written(tmp_path):
    main(["logreg", "--epochs", "2", "--out", str(tmp_path)])
    names = sorted(os.listdir(tmp_path))
    assert names == ["checkpoint.npz", "curves.png", "metrics.csv", "metrics.json", "model.npz"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["test_acc"]) == 2
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_survives_being_killed_mid_training(tmp_path):
    cmd = [sys.executable, "-m", "models.train", "mlp", "--epochs", "400", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "checkpoint.npz"
    try:
        deadline = time.time() + 60
        while not ckpt.exists() and time.time() < deadline:
            time.sleep(0.05)
        for delay in (0.013, 0.031, 0.057):  # land inside writes at different points
            time.sleep(delay)
            state = nn.load(ckpt)
            assert int(state["meta/epoch"]) >= 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    state = nn.load(ckpt)  # still a complete checkpoint after SIGKILL
    epoch = int(state["meta/epoch"])
    history = json.loads(str(state["meta/history"]))
    assert len(history["train_loss"]) == epoch
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) <= 1  # at most the one temp file the kill interrupted


def test_resume_without_checkpoint_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="run without --resume first"):
        train(CONFIGS["logreg"], str(tmp_path), resume=True, log=quiet)


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    train(replace(CONFIGS["logreg"], epochs=1), str(tmp_path), log=quiet)
    with pytest.raises(ValueError, match="holds a 'logreg' run"):
        train(CONFIGS["mlp"], str(tmp_path), resume=True, log=quiet)


@pytest.mark.parametrize("argv", [["resnet"], ["mlp", "--epochs", "0"], ["mlp", "--lr", "-1"]])
def test_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert "error" in capsys.readouterr().err


def test_compiled_training_gives_the_eager_numbers_and_a_report(tmp_path):
    """The numpy backend is eager training bit for bit, on every machine; llvm sums in
    another order (and fuses multiply-adds), so its numbers agree to rounding and its test
    accuracy within two of the 359 images, not digit for digit."""
    config = replace(CONFIGS["mlp"], epochs=2)
    eager = train(config, str(tmp_path / "eager"), log=quiet)
    lines = []
    reference = train(
        config, str(tmp_path / "numpy"), log=lines.append, compiled=True, backend="numpy"
    )
    for key in ("train_loss", "test_loss", "test_acc"):
        assert reference[key] == eager[key], key
    assert (tmp_path / "numpy" / "compiler_report.html").exists()
    assert any("kernels" in line for line in lines)
    pytest.importorskip("llvmlite")
    llvm = train(config, str(tmp_path / "llvm"), log=quiet, compiled=True, backend="llvm")
    np.testing.assert_allclose(llvm["train_loss"], eager["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(llvm["test_loss"], eager["test_loss"], rtol=1e-3)
    np.testing.assert_allclose(llvm["test_acc"], eager["test_acc"], atol=2 / 359 + 1e-9)
