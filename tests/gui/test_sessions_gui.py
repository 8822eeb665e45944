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
