"""Sessions in the window: save and reopen, a rejected file changes nothing, presets and study topics open."""
import json

from engine.presets import get_preset


def test_save_then_open_restores_the_race(window, tmp_path):
    menus = window.sessions
    window.landscape.set_config(get_preset("adagrad_vs_rmsprop").session.landscape)
    before = window.landscape.config()
    path = tmp_path / "lesson.json"
    assert menus.save_to(path)
    saved = json.loads(path.read_text())
    assert saved["schema"] == 1 and "torch" in saved["app"] and saved["landscape"]["function"] == before.function
    window.landscape.set_config(get_preset("momentum_ravine").session.landscape)
    assert window.landscape.config() != before
    assert menus.open_path(path)
    assert window.landscape.config() == before
    assert str(path) in menus._recent()


def test_unticked_optimisers_and_runs_come_back_unticked_in_their_places(window, tmp_path):
    from PySide6.QtCore import Qt

    menus = window.sessions
    opts = window.landscape.optimizers
    names = [e.name for e in opts.editors]
    assert len(names) >= 3
    opts.list.item(1).setCheckState(Qt.Unchecked)
    runs = window.mnist.runs
    runs.list.item(0).setCheckState(Qt.Unchecked)
    n_runs = runs.count()
    session = menus.current()
    assert [oc.name for oc in session.landscape.optimizers] == names[:1] + names[2:]  # what races
    assert [at for at, _ in session.parked_optimizers] == [1] and len(session.mnist_runs) == n_runs - 1
    path = tmp_path / "ticks.json"
    assert menus.save_to(path)
    opts.list.item(1).setCheckState(Qt.Checked)
    runs.list.item(0).setCheckState(Qt.Checked)
    assert menus.open_path(path)
    assert [e.name for e in opts.editors] == names
    assert [opts.list.item(i).checkState() == Qt.Checked for i in range(len(names))] == \
        [i != 1 for i in range(len(names))]
    assert runs.enabled() == [False] + [True] * (n_runs - 1)


def test_a_sessions_speed_title_and_clip_settings_survive_open_and_save(window, tmp_path):
    from engine.session import Display, load_session, save_session

    menus = window.sessions
    made = menus.current().replace(display=Display(steps_per_frame=100, fps=12, theme="presenter-dark"),
                                   title="My demo", caption="two\nlines", topic="momentum")
    path = save_session(made, tmp_path / "demo.json")
    assert menus.open_path(path)
    assert window.landscape.steps_per_frame() == 100  # exactly, though the slider's steps are coarser
    again = load_session(menus.save_to(tmp_path / "again.json") and tmp_path / "again.json")
    assert again.display == made.display
    assert (again.title, again.caption, again.topic) == ("My demo", "two\nlines", "momentum")
    window.landscape.speed.setValue(window.landscape.speed.value() + 1)  # the user moves the slider: theirs now
    assert window.landscape.steps_per_frame() != 100


def test_a_rejected_file_names_the_field_and_leaves_the_session_untouched(window, tmp_path):
    menus = window.sessions
    before = window.landscape.config()
    path = tmp_path / "bad.json"
    good = json.loads(menus.current().to_json())
    good["landscape"]["optimizers"][0]["params"]["lr"] = -1
    path.write_text(json.dumps(good))
    assert not menus.open_path(path)
    assert "lr" in window.last_error_box.text()
    assert window.landscape.config() == before


def test_presets_menu_and_study_topics_open_their_lesson(window):
    titles = [a.text() for m in window.sessions.presets_menu.menu().actions() if m.menu() for a in m.menu().actions()]
    assert len(titles) >= 15
    window.sessions.open_preset(get_preset("momentum_ravine"))
    assert window.landscape.config().function == "ravine"
    window.open_preset_for_topic("dropout")
    assert window.tabs.currentWidget() is window.mnist


def test_mnist_metrics_export_one_file_per_run(window, qtbot, tmp_path):
    panel = window.mnist
    window.tabs.setCurrentWidget(panel)
    cfgs = panel.configs()[:2]
    panel.set_configs([type(c)(**{**c.__dict__, "epochs": 1, "train_size": 600}) for c in cfgs])
    panel.start()
    qtbot.waitUntil(lambda: not panel._active and panel.traces and all(t.summary is not None for t in panel.traces),
                    timeout=120_000)
    written = window.sessions.write_training_metrics(tmp_path / "m.csv")
    assert [p.name for p in written] == ["m-run1.csv", "m-run2.csv"]
    text = written[0].read_text()
    assert "kind" in text.splitlines()[0] and "eval" in text
    panel.shutdown()


def test_opening_a_session_stops_a_training_under_way(window, monkeypatch):
    stopped = []
    monkeypatch.setattr(window.mnist, "running", lambda: True)
    monkeypatch.setattr(window.mnist, "stop", lambda: stopped.append(True))
    window.sessions.open_preset(get_preset("momentum_ravine"))
    assert stopped == [True]


def test_with_nothing_ticked_the_optimisers_are_saved_racing_so_the_file_opens_again(window, tmp_path):
    from PySide6.QtCore import Qt

    opts = window.landscape.optimizers
    names = [e.name for e in opts.editors]
    for i in range(len(names)):
        opts.list.item(i).setCheckState(Qt.Unchecked)
    path = tmp_path / "none.json"
    assert window.sessions.save_to(path)
    assert window.sessions.open_path(path)
    assert [e.name for e in opts.editors] == names


def test_the_shared_settings_come_from_a_ticked_run_and_disagreeing_runs_are_pointed_out(window, tmp_path):
    from engine.config import OptimizerConfig
    from engine.session import save_session
    from engine.training import TrainConfig

    ticked = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-3}), epochs=1, batch_size=32, train_size=400)
    other = TrainConfig(optimizer=OptimizerConfig("sgd", {"lr": 0.1}), epochs=7, batch_size=128, train_size=1000)
    session = window.sessions.current().replace(mnist_runs=(ticked,), parked_runs=((0, other),))
    assert window.sessions.open_path(save_session(session, tmp_path / "shared.json"))
    mnist = window.mnist
    assert (mnist.epochs.value(), mnist.batch.value()) == (1, 32)
    assert mnist.runs.enabled() == [False, True]
    two = session.replace(mnist_runs=(ticked, other), parked_runs=())
    assert window.sessions.open_path(save_session(two, tmp_path / "two.json"))
    shown = window.statusBar().currentMessage()
    assert "differ in" in shown and "epochs" in shown and "batch size" in shown


def test_a_refused_field_does_not_cost_the_session_kept_at_close(window):
    from engine.session import last_session_path, load_session

    opts = window.landscape.optimizers
    editor = opts.editors[-1]
    before = editor.form.values()["lr"]
    editor.form.widgets["lr"].setText("-1")  # a typo left in a field when the window closes
    editor.form.widgets["lr"].editingFinished.emit()
    window.sessions.save_last()
    kept = load_session(last_session_path())
    assert [oc.name for oc in kept.landscape.optimizers] == [e.name for e in opts.editors]
    assert kept.landscape.optimizers[-1].params["lr"] == before  # its last accepted value
    assert editor.form.widgets["lr"].text() == "-1"  # the field itself is left as typed
