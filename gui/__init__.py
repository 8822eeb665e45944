"""Optiscope's Qt front end: PySide6 widgets and pyqtgraph plots over the engine's generators."""
