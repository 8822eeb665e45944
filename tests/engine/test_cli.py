"""Headless commands (engine/cli.py): MNIST summaries and refusals, landscape mini-batches."""
import csv
import json
import re

import numpy as np
import pytest

from engine.cli import _loss, run_cli

SMALL = ["--train-size", "400", "--batch-size", "50", "--dropout", "0"]


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_mnist_best_val_acc_is_the_highest_accuracy_and_the_lowest_loss_is_reported_beside_it(tmp_path, capsys):
    out = tmp_path / "m"
    assert run_cli(["run", "mnist", "--optimizer", "adam:lr=0.01", "--epochs", "6", *SMALL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    evals = rows(out / "evals.csv")
    acc = np.array([float(r["val_acc"]) for r in evals])
    loss = np.array([float(r["val_loss"]) for r in evals])
    a, lo = int(np.argmax(acc)), int(np.argmin(loss))
    assert a != lo, "this run's best accuracy and lowest loss come at different epochs"
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["best_val_acc"] == acc[a] and summary["best_epoch"] == float(evals[a]["epoch"])
    assert summary["best_val_loss"] == loss[lo] and summary["best_loss_epoch"] == float(evals[lo]["epoch"])
    assert summary["best_step"] == int(evals[lo]["step"]) and summary["best_acc_step"] == int(evals[a]["step"])
    assert (f"best val acc {acc[a]:.2%} at epoch {float(evals[a]['epoch']):.2f}, lowest val loss "
            f"{loss[lo]:.4g} at epoch {float(evals[lo]['epoch']):.2f}") in printed


def test_mnist_evals_csv_has_the_like_for_like_train_mode_loss_and_the_mini_batch_mean(tmp_path):
    out = tmp_path / "m"
    assert run_cli(["run", "mnist", "--epochs", "2", *SMALL, "--out", str(out)]) == 0
    evals = rows(out / "evals.csv")
    assert list(evals[0])[-1] == "batch_loss_mean"
    for r in evals:  # dropout 0: train mode is eval mode
        assert r["train_loss_dropout"] == r["train_loss"] != r["batch_loss_mean"]


def test_mnist_refuses_lbfgs_before_training_with_exit_code_2(tmp_path, capsys):
    out = tmp_path / "m"
    assert run_cli(["run", "mnist", "--optimizer", "lbfgs", "--epochs", "1", *SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: optimizer lbfgs: L-BFGS needs a closure and full-batch steps")
    assert "choose another optimiser" in err and "missing" not in err
    assert not out.exists(), "refused before anything ran"


def test_huge_losses_print_in_a_general_format_and_csvs_keep_the_exact_value(tmp_path, capsys):
    out = tmp_path / "m"
    assert run_cli(["run", "mnist", "--optimizer", "sgd:lr=100", "--epochs", "1", *SMALL, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    text = cap.out + cap.err
    val_loss = float(rows(out / "evals.csv")[0]["val_loss"])
    assert val_loss > 1e7, "the setting still blows the loss up"
    assert not re.search(r"\d{7,}\.\d{4}", text)
    assert f"val loss {val_loss:.4g}" in cap.err and f"lowest val loss {val_loss:.4g}" in cap.out
    assert _loss(85895437499760640.0) == "8.59e+16" and _loss(0.30074623) == "0.3007"


@pytest.mark.parametrize("flags, message", [
    (["--warmup", "10000"], "error: schedule.warmup_steps: must be shorter than the run (8 steps), got 10000\n"),
    (["--dropout", "0.1,0.2"], "error: dropout: the model has 1 dropout layer: give one value; got 2\n"),
    (["--model-params", "depth=3", "--dropout", "0.1,0.2"],
     "error: dropout: the model has 3 dropout layers: give one value for all, or 3 values (one per layer); got 2\n"),
])
def test_mnist_refusals_name_the_field_once(tmp_path, capsys, flags, message):
    args = ["run", "mnist", "--epochs", "1", "--train-size", "400", "--batch-size", "50", *flags,
            "--out", str(tmp_path / "m")]
    assert run_cli(args) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "m").exists()


def test_with_several_runs_a_schedule_refusal_names_the_run(tmp_path, capsys):
    args = ["run", "mnist", "--optimizer", "adam", "--optimizer", "sgd:lr=0.1", "--warmup", "100", "--epochs", "1",
            *SMALL, "--out", str(tmp_path / "m")]
    assert run_cli(args) == 2
    assert capsys.readouterr().err.startswith("error: optimizer adam schedule.warmup_steps: must be shorter")


def trajectories(path):
    by = {}
    for r in rows(path):
        by.setdefault(r["optimizer"], []).append((float(r["x"]), float(r["y"])))
    return by


def test_landscape_batch_size_steps_sgd_on_mini_batches_and_gd_on_all_points(tmp_path, capsys):
    base = ["run", "landscape", "--function", "linear_regression", "--optimizer", "sgd:lr=0.1",
            "--optimizer", "gd:lr=0.1", "--steps", "30"]
    assert run_cli(base + ["--out", str(tmp_path / "full")]) == 0
    assert run_cli(base + ["--batch-size", "16", "--out", str(tmp_path / "mini")]) == 0
    assert "mini-batches of 16 of the 256 points (seed 0); full batch: GD" in capsys.readouterr().out
    full, mini = trajectories(tmp_path / "full" / "trajectories.csv"), trajectories(tmp_path / "mini" / "trajectories.csv")
    assert mini["GD"] == full["GD"], "GD is full batch whatever the batch size"
    assert mini["SGD"] != full["SGD"] and mini["SGD"][0] == full["SGD"][0]
    # The same mini-batches again: the run repeats exactly.
    assert run_cli(base + ["--batch-size", "16", "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "trajectories.csv").read_bytes() == (tmp_path / "mini" / "trajectories.csv").read_bytes()
    # --batch-size 0 is full batch.
    assert run_cli(base + ["--batch-size", "0", "--out", str(tmp_path / "zero")]) == 0
    assert (tmp_path / "zero" / "trajectories.csv").read_bytes() == (tmp_path / "full" / "trajectories.csv").read_bytes()


@pytest.mark.parametrize("flags, message", [
    (["--function", "linear_regression", "--batch-size", "300"],
     "error: batch_size: 300 is larger than the data set's 256 points (n_points); give at most 256, or 0 for full batch"),
    (["--function", "logistic_regression", "--function-params", "n_points=100", "--batch-size", "101"],
     "error: batch_size: 101 is larger than the data set's 100 points (n_points); give at most 100, or 0 for full batch"),
    (["--function", "linear_regression", "--batch-size", "-1"],
     "error: batch_size: must be between 0 (full batch) and 1,000,000, got -1"),
    (["--function", "rosenbrock", "--batch-size", "8"],
     "error: batch_size: Rosenbrock is not a mean over a data set, so it has no mini-batches"),
])
def test_landscape_batch_size_refusals(tmp_path, capsys, flags, message):
    assert run_cli(["run", "landscape", "--steps", "5", *flags, "--out", str(tmp_path / "l")]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "l").exists()


def test_landscape_batch_size_equal_to_the_data_set_is_accepted(tmp_path):
    assert run_cli(["run", "landscape", "--function", "linear_regression", "--function-params", "n_points=64",
                    "--optimizer", "sgd:lr=0.1", "--batch-size", "64", "--steps", "5", "--out", str(tmp_path / "l")]) == 0
