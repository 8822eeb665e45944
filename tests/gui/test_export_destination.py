"""Where an export goes: every export kind checks the chosen file the same way before writing, and a
failure names the file the user chose, in words."""
import errno
import os

import pytest

from gui.export import (FIGURE_SUFFIXES, METRIC_SUFFIXES, SESSION_SUFFIXES, ExportError, describe_os_error,
                        destination, filter_suffix)


@pytest.mark.parametrize("selected, want", [("CSV (*.csv)", ".csv"), ("JSON (*.json)", ".json"),
                                            ("PNG image (*.png)", ".png"), ("All files (*)", None), (None, None)])
def test_the_filter_names_its_extension(selected, want):
    assert filter_suffix(selected) == want


def test_a_name_without_an_extension_gets_the_chosen_formats(tmp_path):
    assert destination(tmp_path / "run", METRIC_SUFFIXES, "JSON (*.json)") == tmp_path / "run.json"
    assert destination(tmp_path / "run", METRIC_SUFFIXES) == tmp_path / "run.csv"
    assert destination(tmp_path / "fig.SVG", FIGURE_SUFFIXES) == tmp_path / "fig.SVG"


@pytest.mark.parametrize("name, suffixes, words", [
    ("fig.jpg", FIGURE_SUFFIXES, "a figure must end in .png or .svg, not .jpg"),
    ("s.txt", SESSION_SUFFIXES, "must end in .json, not .txt"),
    ("", METRIC_SUFFIXES, "choose a file name"),
    ("missing/m.csv", METRIC_SUFFIXES, "does not exist"),
    ("a-file/m.csv", METRIC_SUFFIXES, "is a file, not a folder"),
    ("a-folder.csv", METRIC_SUFFIXES, "it is a folder"),
])
def test_a_refused_destination_says_why_and_names_the_file(tmp_path, name, suffixes, words):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder.csv").mkdir()
    what = "figure" if suffixes is FIGURE_SUFFIXES else "file"
    with pytest.raises(ExportError) as err:
        destination(str(tmp_path / name) if name else "", suffixes, what=what)
    assert words in str(err.value)
    assert name.split("/")[-1] in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder.csv"], "nothing written"


@pytest.mark.parametrize("code, words", [(errno.EACCES, "no permission to write to"), (errno.EROFS, "is read-only"),
                                         (errno.ENOSPC, "the disk is full"), (errno.ENAMETOOLONG, "too long")])
def test_os_errors_are_said_in_words_naming_the_chosen_file(tmp_path, code, words):
    target = tmp_path / "m.csv"
    exc = OSError(code, os.strerror(code), str(tmp_path / ".m.csv.part"))
    text = describe_os_error(exc, target)
    assert text.startswith(f"cannot write {target}:") and words in text and ".part" not in text


def test_a_session_saved_without_an_extension_gets_json_and_a_bad_folder_is_refused(window, tmp_path):
    menus = window.sessions
    assert menus.save_to(tmp_path / "lesson", "Sessions (*.json)")
    assert (tmp_path / "lesson.json").exists() and menus.path == tmp_path / "lesson.json"
    assert not menus.save_to(tmp_path / "nowhere" / "lesson.json")
    assert "does not exist" in window.last_error_box.text()
    assert window.statusBar().currentMessage().startswith("Save failed:")
    assert not (tmp_path / "nowhere").exists(), "a typed path to a missing folder is refused, not created"


def test_the_view_export_takes_the_filters_extension_and_refuses_another(window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog
    answers = iter([(str(tmp_path / "view"), "SVG drawing (*.svg)"), (str(tmp_path / "view.jpg"), "PNG image (*.png)"),
                    ("", "")])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    window.sessions.export_view()
    assert (tmp_path / "view.svg").stat().st_size > 0
    assert window.statusBar().currentMessage() == f"Exported {tmp_path / 'view.svg'}"
    window.sessions.export_view()
    assert "must end in .png or .svg, not .jpg" in window.statusBar().currentMessage()
    assert not (tmp_path / "view.jpg").exists()
    window.last_error_box.close()
    window.sessions.export_view()
    assert window.statusBar().currentMessage() == "Export cancelled; nothing was written."
