"""The map's raster layers (a cloud's fading trails, whole paths) and the curve plots' ranges: what they
draw is checked in pixels, where the view puts the data, in the optimiser's colour."""
import numpy as np
import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from engine.landscape import LandscapeFrame
from gui.plots import clip_segments
from gui.style import colour

STEP = 0.05  # data units a particle moves per step: ~8 pixels on the test panel's map


def _frame(t, xy):
    k, n = xy.shape[:2]
    return LandscapeFrame(step=t, xy=xy, loss=np.full((k, n), 1.0 + 1.0 / (t + 1)), grad=np.ones((k, n, 2)),
                          lr=np.full(k, 0.01), diverged_at=np.full((k, n), -1), evals=np.full(k, t + 1))


def _cloud(panel, n=2, k=2):
    """k optimisers x n particles in a row, 2 apart; optimiser j's particles move along +x (j = 0) or
    +y (j = 1), never onto each other's paths within 35 steps."""
    from gui.landscape_panel import RaceHistory
    panel.run_configs = panel.optimizers.enabled_configs()[:k]
    panel._make_items(k, n)
    panel.history = RaceHistory(k, n)
    start = np.zeros((k, n, 2))
    start[:, :, 0] = -1.8 + 2.0 * np.arange(n)
    start[:, :, 1] = 0.0
    start[1, :, 1] = 1.5
    move = np.array([[STEP, 0.0], [0.0, STEP]])[:k, None, :]
    return start, move


def _advance(panel, start, move, t):
    panel.history.add([_frame(t, start + t * move)])
    panel.redraw()


def _pixel(layer, x, y):
    """The composite's colour where the view box shows data point (x, y), found through the view box."""
    vb = layer.vb
    scene = vb.mapViewToScene(pg_point(x, y))
    local = vb.mapFromScene(scene)
    image = layer.composite()
    return image.pixelColor(int(local.x()), int(local.y()))


def pg_point(x, y):
    from PySide6.QtCore import QPointF
    return QPointF(x, y)


def _near(c: QColor, name: str, tol=40) -> bool:
    want = QColor(name)
    return c.alpha() > 0 and all(abs(a - b) <= tol for a, b in zip(c.getRgb()[:3], want.getRgb()[:3]))


def _alpha(image):
    return np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())[:, 3::4]


def test_trail_layer_draws_each_particles_path_in_its_colour_and_fades_it(panel):
    from gui.landscape_panel import TRAIL_STEPS
    start, move = _cloud(panel)
    (i0, _), (i1, _) = panel.run_configs
    for t in range(6):
        _advance(panel, start, move, t)
    layer = panel.trail_layer
    # halfway along the segment of step 2 -> 3 of the first particle of each optimiser
    mid = start[:, 0] + 2.5 * move[:, 0]
    assert _near(_pixel(layer, *mid[0]), colour(i0))
    assert _near(_pixel(layer, *mid[1]), colour(i1))
    # nothing between the two rows of particles
    assert _pixel(layer, -0.5, 0.75).alpha() == 0
    # a screen grab of the map shows the trail: the pixel there changed from the bare colour map
    vb = layer.vb
    at = panel.map_plot.mapFromScene(vb.mapViewToScene(pg_point(*mid[0])))

    def around(image):  # the 1-pixel line may sit a pixel off the rounded position (the view's frame)
        return [image.pixelColor(at.x() + dx, at.y() + dy).name() for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    with_trail = around(panel.map_plot.grab().toImage())
    layer.hide()
    without = around(panel.map_plot.grab().toImage())
    layer.show()
    assert with_trail != without
    # older steps are fainter, and after the trail window they are gone
    for t in range(6, 16):
        _advance(panel, start, move, t)
    early = _pixel(layer, *(start[0, 0] + 0.5 * move[0, 0])).alpha()
    late = _pixel(layer, *(start[0, 0] + 14.5 * move[0, 0])).alpha()
    assert 0 < early < late
    for t in range(16, TRAIL_STEPS + 12):
        _advance(panel, start, move, t)
    assert _pixel(layer, *(start[0, 0] + 0.5 * move[0, 0])).alpha() == 0
    t = TRAIL_STEPS + 11
    assert _near(_pixel(layer, *(start[0, 0] + (t - 0.5) * move[0, 0])), colour(i0))
    # reset: nothing left to paint
    panel.reset()
    assert layer.layers() == [] and not panel.cloud


def test_trail_layer_redraws_from_the_history_when_the_view_moves(panel):
    start, move = _cloud(panel)
    for t in range(8):
        _advance(panel, start, move, t)
    layer = panel.trail_layer
    mid = start[0, 0] + 6.5 * move[0, 0]
    assert _near(_pixel(layer, *mid), colour(panel.run_configs[0][0]))
    was = layer.vb.mapFromScene(layer.vb.mapViewToScene(pg_point(*mid)))
    panel.map_plot.setRange(xRange=(-1.9, -1.0), yRange=(-0.5, 0.4), padding=0)  # zoom in on that trail
    QApplication.processEvents()
    assert _near(_pixel(layer, *mid), colour(panel.run_configs[0][0]))
    assert _pixel(layer, *(mid + [0, 0.05])).alpha() == 0
    # where the trail was before the zoom there is nothing now: the images were drawn afresh
    assert layer.composite().pixelColor(int(was.x()), int(was.y())).alpha() == 0


def test_path_layer_strokes_new_steps_and_keeps_a_diverging_segments_direction(panel):
    from gui.landscape_panel import RaceHistory
    panel.run_configs = panel.optimizers.enabled_configs()[:1]
    panel._make_items(1, 1)
    panel.history = RaceHistory(1, 1)
    i0 = panel.run_configs[0][0]
    for t in range(10):
        _advance(panel, np.array([[[-1.5, 0.0]]]), np.array([[[STEP, STEP]]]), t)
    layer = panel.path_layer
    assert not panel.cloud and len(panel.paths) == 1
    x, y = panel.paths[0].getData()
    np.testing.assert_allclose(np.c_[x, y], panel.history.path(0) and np.c_[panel.history.path(0)])
    assert _near(_pixel(layer, -1.5 + 4.5 * STEP, 4.5 * STEP), colour(i0))
    assert _pixel(layer, -1.5 + 4.5 * STEP, 4.5 * STEP + 0.3).alpha() == 0
    # a step that lands 1e30 away: drawn from the last point to the edge of the view, in its direction
    last = np.array([-1.5 + 9 * STEP, 9 * STEP])
    panel.history.add([_frame(10, np.array([[[last[0] + 1e30, last[1] + 0.5e30]]]))])
    panel.redraw()
    on_line = last + 0.4 * np.array([1.0, 0.5])
    assert _near(_pixel(layer, *on_line), colour(i0))
    assert _pixel(layer, *(on_line + [0, 0.15])).alpha() == 0
    panel.reset()
    assert layer.layers() == [] and panel.paths == []


def test_clip_segments_cuts_at_the_box_and_keeps_directions():
    box = (0.0, 100.0, 0.0, 100.0)
    lines = np.array([[50, 50, 1e30, 50], [50, 50, 1e30, 3e30], [-10, -10, -5, -5], [10, 10, 20, 20],
                      [1e30, 1e30, 50, 50]], dtype=float)
    np.testing.assert_allclose(clip_segments(lines, box),
                               [[50, 50, 100, 50], [50, 50, 50 + 50 / 3, 100], [10, 10, 20, 20],
                                [100, 100, 50, 50]])


def test_curve_ranges_only_grow_while_playing_and_leave_a_users_zoom_alone(panel):
    from gui.landscape_panel import RaceHistory
    panel.steps_spin.setValue(1000)
    panel.run_configs = panel.optimizers.enabled_configs()[:2]
    panel._make_items(2, 1)
    panel.history = RaceHistory(2, 1)
    vb = panel.loss_plot.getPlotItem().vb
    ranges = []
    for t in range(40):
        _advance(panel, np.zeros((2, 1, 2)), np.full((2, 1, 2), 0.01), t)
        ranges.append(vb.viewRange())
    x_hi = [r[0][1] for r in ranges]
    assert x_hi == sorted(x_hi) and x_hi[-1] >= 39 and x_hi[-1] <= 1000
    assert len(set(x_hi)) <= 4  # doubling: a handful of changes in 40 steps, not one a step
    y_lo = [r[1][0] for r in ranges]
    y_hi = [r[1][1] for r in ranges]
    assert y_lo == sorted(y_lo, reverse=True) and y_hi == sorted(y_hi)
    x, y = panel.loss_curves[0].getData()
    assert len(x) == 40
    lo, hi = np.nanmin(y), np.nanmax(y)  # getData of a log-y plot's item: already log10
    assert y_lo[-1] <= lo and y_hi[-1] >= hi - 1e-9
    # the user zooms: that range stays
    vb.setRange(xRange=(5, 10), yRange=(0, 0.5), padding=0)
    _advance(panel, np.zeros((2, 1, 2)), np.full((2, 1, 2), 0.01), 40)
    np.testing.assert_allclose(vb.viewRange(), [[5, 10], [0, 0.5]])
    # a new run starts from the empty plot's range again (four decades, read as a log axis), then follows its data
    panel.reset()
    np.testing.assert_allclose(vb.viewRange(), [[0, 1], [-3, 1]])
    panel._make_items(2, 1)
    panel.history = RaceHistory(2, 1)
    _advance(panel, np.zeros((2, 1, 2)), np.full((2, 1, 2), 0.01), 0)
    (x0, x1), (y0, y1) = vb.viewRange()
    assert x1 >= 16 and y0 <= np.nanmin(panel.loss_curves[0].getData()[1]) <= y1


@pytest.mark.parametrize("tab", [1, 2])
def test_hidden_curve_tab_is_not_redrawn_until_shown(panel, tab):
    from gui.landscape_panel import RaceHistory
    panel.run_configs = panel.optimizers.enabled_configs()[:1]
    panel._make_items(1, 1)
    panel.history = RaceHistory(1, 1)
    panel.side_tabs.setCurrentIndex(tab)
    for t in range(5):
        _advance(panel, np.zeros((1, 1, 2)), np.full((1, 1, 2), 0.01), t)
    x, _ = panel.loss_curves[0].getData()
    assert x is None or len(x) == 0
    panel.side_tabs.setCurrentIndex(0)
    x, _ = panel.loss_curves[0].getData()
    assert len(x) == 5


def test_exports_draw_the_layers_as_lines_at_any_size(panel, tmp_path):
    """A 2x PNG or an SVG is not the screen's pixels: the layers draw vectors there, not a scaled image."""
    from gui.export import export_plot
    from gui.landscape_panel import RaceHistory
    panel.run_configs = panel.optimizers.enabled_configs()[:1]
    panel._make_items(1, 1)
    panel.history = RaceHistory(1, 1)
    for t in range(10):
        _advance(panel, np.array([[[-1.5, 0.0]]]), np.array([[[STEP, STEP]]]), t)
    QApplication.processEvents()
    size = panel.map_plot.size()
    png = export_plot(panel.map_plot, tmp_path / "map.png", width=2 * size.width())
    from PySide6.QtGui import QImage
    image = QImage(str(png))
    assert image.width() == 2 * size.width()
    vb = panel.path_layer.vb
    at = panel.map_plot.mapFromScene(vb.mapViewToScene(pg_point(-1.5 + 4.5 * STEP, 4.5 * STEP)))
    near = [image.pixelColor(2 * at.x() + dx, 2 * at.y() + dy) for dx in range(-2, 3) for dy in range(-2, 3)]
    assert any(_near(c, colour(panel.run_configs[0][0]), tol=30) for c in near)
    svg = export_plot(panel.map_plot, tmp_path / "map.svg").read_text().lower()
    assert f'stroke="{colour(panel.run_configs[0][0]).lower()}"' in svg  # the path as a stroked line


def test_column_extremes_keep_every_columns_min_and_max_and_the_newest_point():
    from gui.plots import column_extremes
    x = np.arange(1000, dtype=float)
    y = np.sin(x / 7.0)
    y[500] = 5.0  # a spike
    y[600:650] = np.nan  # a gap
    cx, cy = column_extremes(x, y, 100)
    assert len(cx) <= 2 * 100 + 10
    assert np.nanmax(cy) == 5.0 and np.nanmin(cy) == np.nanmin(y)
    assert cx[-1] == x[-1] and cy[-1] == y[-1]
    assert np.all(np.diff(cx) >= 0)
    assert np.isnan(cy[(cx >= 600) & (cx < 650)]).all()  # a gap stays a gap
    short_x, short_y = column_extremes(x[:150], y[:150], 100)
    assert short_x is not None and len(short_x) == 150  # fewer points than two a column: as they are


def test_the_plot_context_menu_exports_through_the_apps_exporter(panel, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    target = tmp_path / "map.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    for plot in (panel.map_plot, panel.loss_plot):
        menu = plot.scene().contextMenu
        assert [a.text() for a in menu] == ["Export plot as PNG or SVG..."], "pyqtgraph's own Export is gone"
    panel.map_plot.scene().contextMenu[0].trigger()
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _blitted(layer, layers):
    """``layers`` blitted in turn onto transparent black, as ``paint`` does on the screen."""
    from PySide6.QtGui import QImage, QPainter
    w, h = layer._key[-2:]
    out = QImage(w, h, QImage.Format_ARGB32_Premultiplied)
    out.fill(0)
    p = QPainter(out)
    for image, opacity, part in layers:
        p.setOpacity(opacity)
        p.drawImage(part.topLeft(), image, part)
    p.end()
    return np.frombuffer(out.constBits(), np.uint8).reshape(h, out.bytesPerLine()).astype(int)


def test_the_older_trail_blocks_are_blitted_merged_and_give_the_same_pixels(panel):
    from gui.landscape_panel import TRAIL_BANDS
    start, move = _cloud(panel)
    layer = panel.trail_layer
    for t in range(19):  # into the fifth block of four steps: five images
        _advance(panel, start, move, t)
    bands = layer.layers()
    merged = layer.paint_layers()
    assert len(bands) == TRAIL_BANDS and len(merged) == 2
    assert merged[-1][0] is bands[-1][0] and merged[0][1] == 1.0  # the newest block as it is, the rest in one image
    diff = np.abs(_blitted(layer, merged) - _blitted(layer, bands))
    assert diff.max() <= 2 and (_blitted(layer, bands)[:, 3::4] > 0).sum() > 100  # rounding at most
    # remade when the newest block rolls over: the block that was newest joins the older ones
    first = merged[0][0]
    for t in range(19, 21):
        _advance(panel, start, move, t)
    again = layer.paint_layers()
    assert again[0][0] is first and np.abs(_blitted(layer, again) - _blitted(layer, layer.layers())).max() <= 2
