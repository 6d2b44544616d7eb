"""`python -m models.train MODEL --data DIR`: image models trained on a folder of images (the
digits written as PNGs), the same numbers with and without workers and after a resume, and the
errors for folders that cannot be trained on."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from models.image_data import FolderData, folder_transforms, open_folders
from models.train import CONFIGS, main, train
from tinygrad_edu.data import write_digits_folder


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digits_folder(root, per_class=2, size=16)
    return str(root)


def test_cli_trains_alexnet_mini_on_a_folder(digits_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    main(["alexnet-mini", "--data", digits_dir, "--epochs", "1", "--batch-size", "5", "--out", out])
    printed = capsys.readouterr().out
    assert "images: 10 classes from" in printed and "20 train / 20 test images" in printed
    assert "epoch   1  train loss" in printed and "test acc" in printed
    for name in ("checkpoint.npz", "model.npz", "metrics.csv", "metrics.json", "curves.png"):
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "metrics.json")) as f:
        history = json.load(f)
    assert np.isfinite(history["train_loss"][0]) and 0.0 <= history["test_acc"][0] <= 1.0


def test_workers_and_resume_give_the_same_numbers(tmp_path):
    root = str(tmp_path / "digits")
    write_digits_folder(root, per_class=1, size=16)
    config = replace(CONFIGS["alexnet-mini"], epochs=2, batch_size=4)
    straight = train(config, str(tmp_path / "a"), log=quiet, data=FolderData(root))
    # epoch 1 in two workers, then resumed in this process: the same numbers
    first = replace(config, epochs=1)
    train(first, str(tmp_path / "b"), log=quiet, data=FolderData(root, workers=2))
    resumed = train(config, str(tmp_path / "b"), resume=True, log=quiet, data=FolderData(root))
    for key in ("train_loss", "test_loss", "test_acc"):
        assert straight[key] == resumed[key], key


def test_a_folder_of_classes_is_split_stratified(digits_dir):
    config = CONFIGS["alexnet-mini"]
    folders = open_folders(config, FolderData(os.path.join(digits_dir, "train"), val_fraction=0.5))
    assert len(folders.train) == 10 and len(folders.val) == 10
    assert sorted(folders.val.targets) == list(range(10))
    x, y = folders.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    split = open_folders(config, FolderData(digits_dir))  # DIR/train and DIR/val
    assert len(split.train) == 20 and len(split.val) == 20


def test_transforms_follow_the_model_config():
    train_tf, val_tf = folder_transforms(CONFIGS["alexnet"])
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8))
    assert train_tf(image).shape == (3, 227, 227)
    assert val_tf(image).shape == (3, 256, 256)  # ten crops of 227 are cut at evaluation
    _, tv_val = folder_transforms(CONFIGS["alexnet-torchvision"])
    assert tv_val(image).shape == (3, 256, 256)
    no_ten_crop = replace(CONFIGS["alexnet-torchvision"], ten_crop=False, resize_size=None)
    assert folder_transforms(no_ten_crop)[1](image).shape == (3, 224, 224)


def test_folders_that_cannot_be_trained_on(tmp_path, capsys):
    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(one / "a.png")
    with pytest.raises(ValueError, match="needs >= 2 classes"):
        open_folders(CONFIGS["alexnet-mini"], FolderData(str(tmp_path / "one")))
    write_digits_folder(tmp_path / "d", per_class=1, size=8)
    os.rename(tmp_path / "d" / "val" / "9", tmp_path / "d" / "val" / "nine")
    with pytest.raises(ValueError, match="classes of .* differ"):
        open_folders(CONFIGS["alexnet-mini"], FolderData(str(tmp_path / "d")))
    for argv in (["mlp", "--data", str(tmp_path)], ["alexnet"], ["mlp", "--val", "x"]):
        with pytest.raises(SystemExit):
            main(argv)
    err = capsys.readouterr().err
    assert "--data needs an image model" in err and "alexnet trains on images" in err


@pytest.mark.slow
@pytest.mark.parametrize("model", ["alexnet", "alexnet-torchvision"])
def test_full_alexnet_trains_on_the_digits_folder(model, tmp_path):
    root = tmp_path / "digits"
    write_digits_folder(root, per_class=1, size=32)
    config = replace(CONFIGS[model], epochs=1, batch_size=5)
    history = train(config, str(tmp_path / "run"), log=quiet, data=FolderData(str(root)))
    assert np.isfinite(history["train_loss"][0]) and np.isfinite(history["test_loss"][0])


@pytest.mark.slow
def test_compiled_folder_training_gives_the_eager_numbers(digits_dir, tmp_path):
    config = replace(CONFIGS["alexnet-mini"], epochs=1, batch_size=10)
    eager = train(config, str(tmp_path / "e"), log=quiet, data=FolderData(digits_dir))
    compiled = train(
        config, str(tmp_path / "c"), log=quiet, compiled=True, data=FolderData(digits_dir)
    )
    np.testing.assert_allclose(compiled["train_loss"], eager["train_loss"], rtol=1e-4)
