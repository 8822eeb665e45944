"""Optiscope's engine: torch optimisers and schedules on 2D functions and MNIST.

Pure numerics (torch, numpy). Never imports Qt or pyqtgraph: the GUI and the
headless commands both drive the generators defined here.
"""
