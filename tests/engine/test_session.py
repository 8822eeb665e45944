"""Session files: round trip, refusals that name the field, atomic saves, recent files, last session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import OptimizerConfig, ScheduleConfig
from engine.landscape import LandscapeConfig, StartsConfig
from engine.session import (SCHEMA_VERSION, Display, Session, SessionError, last_session_path, load_session,
                            parse_session, prune_recent, push_recent, restore_last_session, save_session,
                            session_from_dict, version_notes)
from engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def rich_session() -> Session:
    """Something of everything: custom function, several optimisers with schedules, clouds, MNIST runs."""
    land = LandscapeConfig(
        function="custom", custom_expression="sin(x) * cos(y) + 0.1 * (x**2 + y**2)",
        custom_domain=((-4.0, 4.0), (-3.0, 3.0)), start=(1.5, -2.0), starts=StartsConfig("disc", 16, 0.3),
        steps=750, seed=42,
        optimizers=(OptimizerConfig("sgd", {"lr": 0.02, "noise": 0.7}, ScheduleConfig("step", {"step_size": 50, "gamma": 0.5}),
                                    "noisy SGD"),
                    OptimizerConfig("adam", {"lr": 0.05, "beta1": 0.8}, ScheduleConfig("cosine", {}, 20, 0.1)),
                    OptimizerConfig("momentum", {"lr": 0.01, "momentum": 0.95, "nesterov": True},
                                    ScheduleConfig("cyclic", {"base_lr": 0.001, "max_lr": 0.02, "step_size_up": 40}))))
    runs = (TrainConfig(optimizer=OptimizerConfig("adamw", {"lr": 2e-3, "weight_decay": 0.05},
                                                  ScheduleConfig("plateau", {"patience": 2})),
                        epochs=4, label_smoothing=0.1, early_stopping=2, model_params={"hidden": 64, "dropout": 0.3},
                        seed=7, label="AdamW"),
            TrainConfig(model="cnn", optimizer=OptimizerConfig("momentum", {"lr": 0.05}), epochs=2, batch_size=128))
    return Session(view="mnist", landscape=land, mnist_runs=runs,
                   display=Display(steps_per_frame=7, fps=24, theme="presenter-dark"),
                   title="All of it", caption="line one\nline two", topic="momentum",
                   parked_optimizers=((1, OptimizerConfig("rmsprop", {"lr": 0.003}, label="off for now")),),
                   parked_runs=((0, TrainConfig(optimizer=OptimizerConfig("sgd", {"lr": 0.1}), epochs=1)),))


# ---- round trip ------------------------------------------------------------------------------------

def test_round_trip_keeps_everything(tmp_path):
    s = rich_session()
    path = save_session(s, tmp_path / "a.json")
    back = load_session(path)
    assert back.landscape == s.landscape and back.mnist_runs == s.mnist_runs
    assert (back.view, back.display, back.title, back.caption, back.topic) == \
        (s.view, s.display, s.title, s.caption, s.topic)
    assert back.parked_optimizers == s.parked_optimizers and back.parked_runs == s.parked_runs
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA_VERSION
    for lib in ("optiscope", "torch", "numpy", "python"):
        assert data["app"][lib], f"the versions that made the file are recorded: {lib}"
    assert back.app == data["app"]
    # Saving what was loaded gives the same bytes (apart from the stamp, which is the same process).
    again = save_session(back, tmp_path / "b.json")
    assert again.read_text() == path.read_text()


def test_missing_parts_take_defaults_and_a_minimal_file_loads():
    s = parse_session('{"schema": 1}')
    assert s == Session()
    s = parse_session('{"schema": 1, "view": "landscape", "landscape": {"function": "ravine", "steps": 50}}')
    assert s.landscape.function == "ravine" and s.landscape.steps == 50


def test_version_notes_name_what_differs():
    s = rich_session()
    same = parse_session(s.to_json())
    assert version_notes(same) == []
    old = Session(app={"optiscope": "0.0.1", "torch": "1.0.0", "numpy": same.app["numpy"]})
    notes = version_notes(old)
    assert any("torch 1.0.0" in n for n in notes) and any("optiscope 0.0.1" in n for n in notes)
    assert not any("numpy" in n for n in notes)


# ---- refusals ---------------------------------------------------------------------------------------

def base() -> dict:
    return json.loads(rich_session().to_json())


def refuse(data_or_text) -> SessionError:
    with pytest.raises(SessionError) as info:
        if isinstance(data_or_text, (str, bytes)):
            parse_session(data_or_text)
        else:
            session_from_dict(data_or_text)
    return info.value


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d.update(colour="blue"), "colour", "unknown key"),
    (lambda d: d["landscape"].update(stepz=5), "landscape.stepz", "unknown key"),
    (lambda d: d["landscape"]["optimizers"][1].update(lr=0.1), "landscape.optimizers[1].lr", "unknown key"),
    (lambda d: d["landscape"]["optimizers"][1]["params"].update(betta=0.1),
     "landscape.optimizers[1].params.betta", "unknown setting"),
    (lambda d: d["mnist"]["runs"][1].update(epoch=3), "mnist.runs[1].epoch", "unknown key"),
    (lambda d: d["display"].update(speed=3), "display.speed", "unknown key"),
    # wrong types
    (lambda d: d["landscape"].update(steps="500"), "landscape.steps", "expected int"),
    (lambda d: d["landscape"].update(start="1, 2"), "landscape.start", "two numbers"),
    (lambda d: d["landscape"]["optimizers"][0]["params"].update(lr="fast"),
     "landscape.optimizers[0].params.lr", "expected a number"),
    (lambda d: d["landscape"].update(optimizers={"name": "adam"}), "landscape.optimizers", "list"),
    (lambda d: d["mnist"]["runs"][0].update(augment="yes"), "mnist.runs[0].augment", "expected bool"),
    (lambda d: d["mnist"].update(runs={}), "mnist.runs", "list"),
    (lambda d: d.update(title=3), "title", "expected text"),
    (lambda d: d["display"].update(fps=29.97), "display.fps", "whole number"),
    (lambda d: d.update(view=1), "view", "expected text"),
    # out of range
    (lambda d: d["landscape"]["optimizers"][2]["params"].update(lr=-0.1),
     "landscape.optimizers[2].params.lr", "greater than 0"),
    (lambda d: d["landscape"]["optimizers"][1]["params"].update(beta2=1.5),
     "landscape.optimizers[1].params.beta2", "at most"),
    (lambda d: d["landscape"]["optimizers"][0]["schedule"]["params"].update(gamma=3),
     "landscape.optimizers[0].schedule.params.gamma", "at most 1"),
    (lambda d: d["landscape"]["optimizers"][1]["schedule"].update(warmup_steps=10_000),
     "landscape.optimizers[1].schedule.warmup_steps", "shorter than the run"),
    (lambda d: d["landscape"]["optimizers"][2]["schedule"]["params"].update(max_lr=0.0001),
     "landscape.optimizers[2].schedule.params.max_lr", "at least base_lr"),
    (lambda d: d["landscape"].update(steps=0), "landscape.steps", "between 1"),
    (lambda d: d["landscape"]["starts"].update(count=0), "landscape.starts.count", "between 1"),
    (lambda d: d["landscape"].update(function="rosenbrock", function_params={"b": 1e6}),
     "landscape.function_params.b", "at most"),
    (lambda d: d["landscape"].update(function="nope"), "landscape.function", "unknown function"),
    (lambda d: d["landscape"]["optimizers"][0].update(name="sgdd"), "landscape.optimizers[0].name", "unknown optimizer"),
    (lambda d: d["mnist"]["runs"][0].update(epochs=0), "mnist.runs[0].epochs", "between 1 and 1000"),
    (lambda d: d["mnist"]["runs"][0].update(label_smoothing=1.5), "mnist.runs[0].label_smoothing", "[0, 1)"),
    (lambda d: d["mnist"]["runs"][0]["model_params"].update(hidden=0), "mnist.runs[0].model_params.hidden",
     "at least"),
    (lambda d: d["mnist"]["runs"][1]["optimizer"]["params"].update(lr=0), "mnist.runs[1].optimizer.params.lr",
     "greater than 0"),
    (lambda d: d["mnist"]["runs"][0]["optimizer"]["schedule"]["params"].update(factor=2.0),
     "mnist.runs[0].optimizer.schedule.params.factor", "below 1"),
    (lambda d: d["mnist"].update(runs=[]), "mnist.runs", "1 to"),
    (lambda d: d["display"].update(theme="neon"), "display.theme", "not one of"),
    (lambda d: d.update(view="3d"), "view", "not one of"),
    (lambda d: d.update(title="x" * 1000), "title", "at most"),
    # what the file asks to run is never executed: an expression is parsed, and refused
    (lambda d: d["landscape"].update(custom_expression="__import__('os').system('true')"),
     "landscape.custom_expression", "not allowed"),
    (lambda d: d["landscape"].update(custom_expression="x.__class__"), "landscape.custom_expression",
     "not allowed"),
])
def test_refusals_name_the_field(edit, field, words):
    d = base()
    edit(d)
    err = refuse(d)
    assert err.field == field, str(err)
    assert words in err.problem, str(err)
    assert str(err).startswith(field)


def test_newer_schema_is_refused_with_a_clear_message():
    d = base()
    d["schema"] = SCHEMA_VERSION + 1
    d["something_new"] = {"a": 1}  # a newer file may have keys this version does not know
    err = refuse(d)
    assert err.field == "schema"
    assert f"schema {SCHEMA_VERSION + 1}" in err.problem and "Update Optiscope" in err.problem
    assert d["app"]["optiscope"] in err.problem


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("   \n", "empty"),
    ("not json at all", "not valid JSON"),
    ("[1, 2, 3]", "JSON object"),
    ('{"schema": 1, "landscape": {"steps": NaN}}', "NaN"),
    ('{"schema": 1, "landscape": {"steps": Infinity}}', "Infinity"),
    ('{"landscape": {}}', "not an Optiscope session"),
    ('{"schema": "1"}', "whole number"),
    ('{"schema": 0}', "1 or more"),
    (b"\xff\xfe\x00garbage", "UTF-8"),
])
def test_not_a_session_file_is_refused(text, words):
    err = refuse(text)
    assert words in err.problem, str(err)
    assert err.field in ("file", "schema")


def test_truncated_file_is_refused_and_says_so(tmp_path):
    full = rich_session().to_json()
    for cut in (len(full) // 3, len(full) - 5):
        p = tmp_path / f"cut{cut}.json"
        p.write_text(full[:cut])
        with pytest.raises(SessionError) as info:
            load_session(p)
        assert info.value.field == "file" and "truncated" in info.value.problem


def test_duplicate_keys_are_refused():
    err = refuse('{"schema": 1, "view": "mnist", "view": "landscape"}')
    assert err.field == "view" and "twice" in err.problem


def test_missing_file_and_huge_file_are_refused(tmp_path):
    with pytest.raises(SessionError, match="cannot read"):
        load_session(tmp_path / "absent.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 3_000_000)
    with pytest.raises(SessionError, match="at most"):
        load_session(big)


def test_a_refused_file_leaves_the_current_session_untouched(tmp_path):
    current = rich_session()
    before = current.to_json(stamp=False)
    bad = tmp_path / "bad.json"
    d = base()
    d["landscape"]["steps"] = -1
    bad.write_text(json.dumps(d))
    loaded = current
    try:
        loaded = load_session(bad)
    except SessionError:
        pass
    assert loaded is current and current.to_json(stamp=False) == before


# ---- atomic save ------------------------------------------------------------------------------------

def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_session(Session(title="old"), path)
    old = path.read_bytes()

    real_fsync = os.fsync

    def exploding_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", exploding_fsync)
    with pytest.raises(OSError):
        save_session(Session(title="new"), path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == old
    assert load_session(path).title == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "no temporary file is left behind"


def test_failed_rename_and_unserialisable_value_leave_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_session(Session(title="old"), path)
    old = path.read_bytes()

    def no_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(PermissionError):
        save_session(Session(title="new"), path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    # A value JSON cannot hold (NaN) fails before the disk is touched.
    bad = Session(landscape=LandscapeConfig(start=(float("nan"), 0.0)))
    with pytest.raises(ValueError):
        save_session(bad, path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_a_crash_mid_save_never_leaves_a_half_written_file(tmp_path):
    """Kill a process in the middle of writing; the target holds the old or the new file, whole."""
    path = tmp_path / "s.json"
    save_session(Session(title="old"), path)
    code = (
        "import os, sys; sys.path.insert(0, %r)\n"
        "import engine.session as s\n"
        "real = os.fsync\n"
        "def die(fd): os._exit(9)\n"  # the process dies after the data is written, before the rename
        "os.fsync = die\n"
        "s.save_session(s.Session(title='new'), %r)\n" % (str(ROOT), str(path)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 9
    assert load_session(path).title == "old"


# ---- recent files and the last session ---------------------------------------------------------------

def test_recent_files_list(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.json", "b.json", "c.json"))
    recent = push_recent([], a)
    recent = push_recent(recent, b)
    recent = push_recent(recent, a)
    assert recent == [str(a.resolve()), str(b.resolve())]
    recent = push_recent(recent, c, limit=2)
    assert recent == [str(c.resolve()), str(a.resolve())]
    save_session(Session(), a)
    assert prune_recent(recent) == [str(a.resolve())]


def test_last_session_restores_and_a_bad_one_is_set_aside(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTISCOPE_STATE_DIR", str(tmp_path / "state"))
    assert last_session_path() == tmp_path / "state" / "last-session.json"
    assert restore_last_session() == (None, "")
    save_session(rich_session(), last_session_path())
    s, why = restore_last_session()
    assert why == "" and s.landscape == rich_session().landscape
    last_session_path().write_text('{"schema": 1, "view": "nowhere"}')
    s, why = restore_last_session()
    assert s is None and "view" in why
    assert not last_session_path().exists() and (tmp_path / "state" / "last-session.json.rejected").exists()


@pytest.mark.parametrize("parked, field", [
    ({"landscape": {"at": [0], "optimizers": [{"name": "adam", "params": {"lr": -1}}]}},
     "parked.landscape.optimizers[0]"),
    ({"landscape": {"at": [0, 1], "optimizers": [{"name": "adam"}]}}, "parked.landscape"),
    ({"mnist": {"at": ["first"], "runs": [{}]}}, "parked.mnist.at[0]"),
    ({"mnist": {"at": [0], "runs": [{"epochs": 0}]}}, "parked.mnist.runs[0]"),
    ({"elsewhere": {}}, "parked.elsewhere"),
    ({"mnist": {"at": [0], "runs": [{"batch_size": 0}]}}, "parked.mnist.runs[0].batch_size"),
    ({"landscape": {"at": [0], "optimizers": [{"name": "adam", "schedule": {"name": "constant",
                                                                         "warmup_steps": 999999}}]}},
     "parked.landscape.optimizers[0].schedule.warmup_steps"),
    ({"landscape": {"at": list(range(8)), "optimizers": [{"name": "adam"}] * 8}}, "parked.landscape"),
])
def test_bad_parked_entries_are_refused_with_the_field_named(parked, field):
    data = json.loads(Session().to_json())
    data["parked"] = parked
    with pytest.raises(SessionError) as info:
        session_from_dict(data)
    assert info.value.field.startswith(field)


def test_a_file_with_nothing_parked_has_no_parked_key_and_a_preset_keeps_only_its_view():
    assert "parked" not in json.loads(Session().to_json())
    s = rich_session()
    only_mnist = json.loads(s.to_json(views=("mnist",)))
    assert "landscape" not in only_mnist["parked"] and only_mnist["parked"]["mnist"]["at"] == [0]


def test_seeds_beyond_what_the_window_holds_are_refused():
    data = json.loads(Session().to_json())
    data["landscape"]["seed"] = 2 ** 31
    with pytest.raises(SessionError) as info:
        session_from_dict(data)
    assert info.value.field == "landscape.seed"
    data = json.loads(Session().to_json())
    data["mnist"]["runs"][0]["seed"] = 3_000_000_000
    with pytest.raises(SessionError) as info:
        session_from_dict(data)
    assert info.value.field == "mnist.runs[0].seed"
