"""What the browser tests share: the Chromium they drive, its flags, a freshly executed demo notebook,
and colour tests on computed CSS colours."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
#: flags that keep Chromium quiet on a closed network (without them it floods it with requests)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO = "01_fraud_detection.ipynb"
EXECUTE_SECONDS = 300


def executed_demo(folder: Path) -> Path:
    """The demo built from its source and executed now, with this checkout's renderer, saved unsigned
    (so JupyterLab treats it as untrusted)."""
    import nbformat
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT / "demo_notebooks"))
    from build_demos import build

    nb = build(DEMO)
    NotebookClient(
        nb, timeout=EXECUTE_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    path = folder / DEMO
    nbformat.write(nb, str(path))
    return path


def rgba(css: str) -> tuple:
    parts = css[css.index("(") + 1 : css.index(")")].split(",")
    return tuple(float(p) for p in parts[:3]) + ((float(parts[3]),) if len(parts) > 3 else (1.0,))


def is_red(css: str) -> bool:
    r, g, b, a = rgba(css)
    return a > 0 and r > 200 and r - g > 30 and r - b > 30


def is_green(css: str) -> bool:
    r, g, b, a = rgba(css)
    return a > 0 and g > 200 and g - r > 20 and g - b > 10
