"""Open the main window, run each view for a while, and save screenshots (for the README and for review):
the 2D race, the MNIST studio's pages, and a basin map.

    python tools/screenshot.py --out resources/screenshots   # QT_QPA_PLATFORM=offscreen works too
    python tools/screenshot.py --out /tmp/shots --glyphs       # + state glyphs, step-by-step, side tabs
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="screenshots")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="1400x860")
    parser.add_argument("--glyphs", action="store_true",
                        help="also turn the state glyphs on and save the step-by-step map and the side tabs")
    parser.add_argument("--only-landscape", action="store_true", help="skip the MNIST view")
    args = parser.parse_args()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.app import configure
    from gui.main_window import MainWindow

    app = QApplication(sys.argv)
    configure()
    window = MainWindow(QSettings("/tmp/optiscope-screenshot.ini", QSettings.IniFormat))
    w, h = (int(v) for v in args.size.split("x"))
    window.resize(w, h)
    window.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)

    pump(0.5)
    window.tabs.setCurrentIndex(0)  # the settings file may remember the MNIST tab
    panel = window.landscape
    if args.glyphs:
        for cb in panel.glyph_checks.values():
            cb.setChecked(True)
    panel.play()
    pump(args.seconds)
    window.grab().save(str(out / "landscape.png"))
    if args.glyphs:
        panel.pause()
        for index in range(1, panel.side_tabs.count()):
            panel.side_tabs.setCurrentIndex(index)
            pump(0.3)
            name = panel.side_tabs.tabText(index).lower().replace(" ", "_")
            window.grab().save(str(out / f"landscape_{name}.png"))
        panel.reset()
        for cb in panel.glyph_checks.values():
            cb.setChecked(False)
        panel.explain_check.setChecked(True)
        panel.optimizers.list.setCurrentRow(min(3, panel.optimizers.list.count() - 1))
        for _ in range(6):
            panel.single_step()
        panel.glyphs.reveal_all()
        pump(0.5)
        window.grab().save(str(out / "landscape_step_by_step.png"))
        print(f"saved the glyph screenshots in {out}")
    if args.only_landscape:
        window.close()
        return 0
    window.tabs.setCurrentIndex(1)
    mnist = window.mnist

    def pump_until(done, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not done():
            app.processEvents()
            time.sleep(0.005)
        pump(0.3)

    mnist.start()  # the default lesson: four optimisers side by side in the training process
    pump_until(lambda: not mnist.running(), args.seconds * 15)
    window.grab().save(str(out / "mnist.png"))
    for index, name in ((1, "layers"), (2, "regularisers")):
        mnist.plots.setCurrentIndex(index)
        pump(0.5)
        window.grab().save(str(out / f"mnist_{name}.png"))
    mnist.plots.setCurrentIndex(3)
    mnist.range_page.run_combo.setCurrentIndex(min(3, mnist.range_page.run_combo.count() - 1))
    mnist.range_page.start_button.click()
    pump_until(lambda: not mnist.running(), args.seconds * 10)
    window.grab().save(str(out / "mnist_lr_range.png"))
    mnist.plots.setCurrentIndex(0)
    window.tabs.setCurrentIndex(2)  # basins of attraction: the default function, its two optimisers side by side
    explore = window.explore
    explore.basin_compare.setChecked(True)
    explore._basins_clicked()
    pump_until(lambda: not explore.basin_jobs[0].running and not explore._pending_basins, args.seconds * 30)
    window.grab().save(str(out / "basins.png"))
    window.close()
    print(f"saved {out}/landscape.png, {out}/mnist*.png and {out}/basins.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
