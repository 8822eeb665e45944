"""Where the product's bundled files live, independent of the working directory."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "resources"
PRESETS = RESOURCES / "presets"
