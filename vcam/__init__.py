"""vcam: an ONVIF virtual IP camera whose outputs are already privacy-masked."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
# The ONNX weights live in the repository's top-level models/ (installed editable).
MODELS_DIR = PACKAGE_DIR.parent / "models"
DATA_DIR = PACKAGE_DIR / "data"
