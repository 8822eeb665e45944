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


# ---- data errors, the output folder, repeated runs, the closing line ---------------------------------------

FAST = ["--train-size", "200", "--epochs", "1", "--batch-size", "50", "--dropout", "0"]


def _idx_folder(folder, images=None, labels=None):
    from engine.idx import encode_idx

    folder.mkdir()
    images = np.zeros((20, 28, 28), np.uint8) if images is None else images
    labels = (np.arange(20) % 10).astype(np.uint8) if labels is None else labels
    (folder / "train-images-idx3-ubyte").write_bytes(encode_idx(images))
    (folder / "train-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return folder


def _truncated(folder):
    path = _idx_folder(folder) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    return folder


def _one_error_line(err, *names):
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)


@pytest.mark.parametrize("make, names", [
    (_truncated, ["train-images-idx3-ubyte: truncated: 1,000 of 15,696 bytes"]),
    (lambda f: _idx_folder(f, labels=np.full(20, 12, np.uint8)), ["train-labels-idx1-ubyte: label 12 out of range"]),
    (lambda f: f, ["is not a folder"]),  # never created
    (lambda f: f.mkdir() or f, ["no MNIST-format training files in"]),
])
@pytest.mark.parametrize("flags", [[], ["--lr-range", "--lr-steps", "5"]])
def test_unreadable_data_is_one_line_naming_the_file_with_exit_code_2(tmp_path, capsys, make, names, flags):
    data = make(tmp_path / "data")
    out = tmp_path / "m"
    code = run_cli(["run", "mnist", "--dataset", "idx_folder", "--data-path", str(data), *FAST, *flags,
                    "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 2 and cap.out == ""
    _one_error_line(cap.err, *names)
    assert not out.exists(), "refused before anything ran"


@pytest.mark.parametrize("optimizers", [["adam"], ["adam", "sgd:lr=0.1"]])
def test_a_data_error_raised_inside_a_run_is_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch, optimizers):
    import engine.training
    from engine.idx import IdxError

    def failing(cfg, data):
        raise IdxError(tmp_path / "train-images-idx3-ubyte", "truncated: 1 of 2 bytes")
        yield

    monkeypatch.setattr(engine.training, "run_training", failing)
    flags = [a for o in optimizers for a in ("--optimizer", o)]
    assert run_cli(["run", "mnist", *flags, *FAST, "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys.readouterr().err, "train-images-idx3-ubyte: truncated: 1 of 2 bytes")


@pytest.mark.parametrize("kind", [["mnist", *FAST], ["mnist", *FAST, "--lr-range", "--lr-steps", "5"],
                                  ["landscape", "--steps", "5"]])
def test_an_output_folder_that_cannot_be_made_is_refused_before_any_training(tmp_path, capsys, monkeypatch, kind):
    import engine.landscape
    import engine.training_process

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(engine.training_process, "run_jobs_inline", no_training)
    monkeypatch.setattr(engine.landscape, "run_landscape", no_training)
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "out"  # under a file: no folder can be made there
    assert run_cli(["run", *kind, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: cannot write to the output folder {out}: Not a directory\n"


def test_runs_with_the_same_settings_get_distinct_names_everywhere(tmp_path, capsys):
    out = tmp_path / "m"
    assert run_cli(["run", "mnist", "--optimizer", "adam:lr=0.001", "--optimizer", "adam:lr=0.001",
                    "--optimizer", "sgd:lr=0.1", *FAST, "--out", str(out)]) == 0
    names = ["adam:lr=0.001", "adam:lr=0.001 (2)", "sgd:lr=0.1"]
    for name in ("steps.csv", "layers.csv", "evals.csv"):
        assert sorted({r["run"] for r in rows(out / name)}) == names, name
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [r["training"]["label"] for r in runs] == names
    printed = capsys.readouterr().out.splitlines()
    assert [line.partition(": best")[0] for line in printed[:3]] == names


def test_landscape_optimisers_with_the_same_settings_get_distinct_names(tmp_path, capsys):
    out = tmp_path / "l"
    assert run_cli(["run", "landscape", "--optimizer", "adam:lr=0.05", "--optimizer", "adam:lr=0.05",
                    "--steps", "3", "--out", str(out)]) == 0
    assert list(trajectories(out / "trajectories.csv")) == ["Adam (lr=0.05)", "Adam (lr=0.05) (2)"]
    printed = capsys.readouterr().out.splitlines()
    assert [line.partition(": ")[0] for line in printed[:2]] == ["Adam (lr=0.05)", "Adam (lr=0.05) (2)"]


def test_the_closing_line_lists_every_file_written(tmp_path, capsys):
    out = tmp_path / "m"
    assert run_cli(["run", "mnist", *FAST, "--out", str(out)]) == 0
    listed = capsys.readouterr().out.splitlines()[-1]
    assert listed == f"wrote {out / 'steps.csv'}, {out / 'layers.csv'}, {out / 'evals.csv'} and {out / 'summary.json'}"
    assert sorted(p.name for p in out.iterdir()) == ["evals.csv", "layers.csv", "steps.csv", "summary.json"]
    assert run_cli(["run", "landscape", "--steps", "3", "--out", str(tmp_path / "l")]) == 0
    listed = capsys.readouterr().out.splitlines()[-1]
    assert listed == f"wrote {tmp_path / 'l' / 'trajectories.csv'} and {tmp_path / 'l' / 'config.json'}"


def test_a_reader_that_goes_away_is_not_an_error(monkeypatch):
    """`python main.py list | head -1`: once head has its line, the pipe closes; that ends the output quietly."""
    import io
    import os

    read_end, write_end = os.pipe()

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return write_end

    err = io.StringIO()
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    monkeypatch.setattr("sys.stderr", err)
    try:
        assert run_cli(["list"]) == 0
        assert run_cli(["--version"]) == 0
    finally:
        os.close(read_end)
        os.close(write_end)
    assert err.getvalue() == ""
