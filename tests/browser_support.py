"""What the browser tests share: the Chromium they drive, its flags, a freshly executed demo notebook,
and colour tests on computed CSS colours."""

import contextlib
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
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


def executed_demo(folder: Path, name: str = DEMO) -> Path:
    """The demo built from its source and executed now, with this checkout's renderer, saved unsigned
    (so JupyterLab treats it as untrusted)."""
    import nbformat
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT / "demo_notebooks"))
    from build_demos import build

    nb = build(name)
    env_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    previous, os.environ["PYTHONPATH"] = (
        os.environ.get("PYTHONPATH"),
        env_path,
    )  # the kernel runs this checkout
    try:
        NotebookClient(
            nb, timeout=EXECUTE_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = previous
    path = folder / name
    nbformat.write(nb, str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(root: Path, home: Path, start_seconds: float = 90, ipython_config: str = ""):
    """JupyterLab (and Notebook 7, when installed: the same server serves /notebooks/) on 127.0.0.1, a
    free port, a token, a temporary root and Jupyter dirs; the app object exposed in the page
    (``window.jupyterapp``) so that tests run commands instead of clicking menus.  ``ipython_config``:
    the kernels' ``ipython_config.py`` (in a temporary IPython dir).  Yields the base URL and the token;
    stops the server (and its kernels) afterwards."""
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    # no "notified about Jupyter news?" toast over the notebook (and no request for the news)
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    # render every cell, not only those scrolled into view, so every table is on the page
    tracker = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    profile = home / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_config.py").write_text(ipython_config)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabServerApp.expose_app_in_browser=True",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()

    def read():
        for line in server.stderr:
            lines.put(line)
        lines.put(None)  # the server exited

    threading.Thread(target=read, daemon=True).start()
    try:
        log = []
        while True:
            try:
                line = lines.get(timeout=start_seconds)
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError("JupyterLab did not start:\n" + "".join(log))
            log.append(line)
            if f"127.0.0.1:{port}/lab" in line:
                break
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def rgba(css: str) -> tuple:
    parts = css[css.index("(") + 1 : css.index(")")].split(",")
    return tuple(float(p) for p in parts[:3]) + ((float(parts[3]),) if len(parts) > 3 else (1.0,))


def is_red(css: str) -> bool:
    r, g, b, a = rgba(css)
    return a > 0 and r > 200 and r - g > 30 and r - b > 30


def is_green(css: str) -> bool:
    r, g, b, a = rgba(css)
    return a > 0 and g > 200 and g - r > 20 and g - b > 10


def narrow_notebook(page, width: int = 700) -> None:
    """JupyterLab with its side bars collapsed and the window sized so that the notebook itself is
    ``width`` px wide, whatever the bars around it take (its output area is then about 600 px)."""
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')")
    page.evaluate("() => { const s = window.jupyterapp.shell; s.collapseLeft(); s.collapseRight(); }")
    page.wait_for_function("() => !document.querySelector('.jp-SideBar.jp-mod-left .lm-mod-current')")
    notebook = page.evaluate("() => document.querySelector('.jp-Notebook').getBoundingClientRect().width")
    page.set_viewport_size({"width": round(page.viewport_size["width"] + width - notebook), "height": 900})
    page.wait_for_function(
        f"() => Math.abs(document.querySelector('.jp-Notebook').getBoundingClientRect().width - {width}) < 2"
    )
