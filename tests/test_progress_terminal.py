"""The progress bar in a real terminal (IPython on an 80-column pseudo-terminal): the bar and its
``try -m fast`` hint fit the width, and Ctrl-C leaves no bar line on the screen."""

from __future__ import annotations

import os
import re
import select
import signal
import struct
import subprocess
import sys
import time

import pytest
from conftest import SETUPS, source

fcntl = pytest.importorskip("fcntl", reason="pseudo-terminals need a POSIX system")
termios = pytest.importorskip("termios", reason="pseudo-terminals need a POSIX system")

from browser_support import ROOT  # noqa: E402

from gradcheck_magic.progress import SUGGEST_FAST  # noqa: E402

COLUMNS = 80
RUN_SECONDS = 180
CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
#: a forward that takes 50 ms a call, then waits for the interrupt (the test's only way out)
SLOW = """import time
_calls = [0]
_forward = forward_propagation_n
def forward_propagation_n(X, Y, parameters):
    _calls[0] += 1
    time.sleep(0.05 if _calls[0] < 40 else 3600)
    return _forward(X, Y, parameters)
"""


def screen(output: str) -> list:
    """The lines a terminal shows after ``output``: carriage returns, line feeds, cursor up and
    erase-in-line applied (enough for tqdm and IPython)."""
    lines, row, col, i = [[]], 0, 0, 0
    while i < len(output):
        m = CSI.match(output, i)
        if m:
            arg, cmd = m.group(1), m.group(2)
            if cmd == "A":
                row = max(row - int(arg or 1), 0)
            elif cmd == "K":
                start = col if arg in ("", "0") else 0
                lines[row] = lines[row][:start] + ([" "] * (col - start) if start == 0 else [])
            i = m.end()
            continue
        ch = output[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            while len(lines) <= row:
                lines.append([])
        elif ch == "\b":
            col = max(col - 1, 0)
        elif ch >= " ":
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + 1] = [ch]
            col += 1
    return ["".join(line).rstrip() for line in lines]


def test_bar_and_hint_fit_80_columns_and_ctrl_c_leaves_no_bar(tmp_path):
    script = tmp_path / "slow.ipy"
    script.write_text(
        "\n".join(
            [
                "import numpy as np",
                source("seed_net"),
                SETUPS["seed_net"],
                SLOW,
                "%load_ext gradcheck_magic",
                "%gradcheck_config widgets=false",
                "%gradcheck --mode full",
                "",
            ]
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(
        TERM="xterm-256color",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    command = [
        sys.executable,
        "-m",
        "IPython",
        "--quick",
        "--no-banner",
        "--colors=NoColor",
        "--TerminalInteractiveShell.term_title=False",
        str(script),
    ]
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    process = subprocess.Popen(
        command,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks, interrupted = [], False
    deadline = time.monotonic() + RUN_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not data:
                    break
                chunks.append(data)
            text = b"".join(chunks).decode("utf-8", "replace")
            if not interrupted and SUGGEST_FAST in text and re.search(r"\b([2-9]\d)%\|", text):
                process.send_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C
                interrupted = True
            if process.poll() is not None and not ready:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        os.close(leader)
    output = b"".join(chunks).decode("utf-8", "replace")
    (tmp_path / "output.txt").write_text(output)
    assert interrupted, output[-2000:]  # the hint was shown and the bar got past 20 %
    frames = [CSI.sub("", f).replace("^C", "") for f in re.split(r"[\r\n]", output) if "%|" in f]
    assert frames and all(len(f) <= COLUMNS for f in frames), max(frames, key=len)
    hinted = [i for i, f in enumerate(frames) if SUGGEST_FAST in f]
    assert hinted and all(SUGGEST_FAST in f for f in frames[hinted[0] :]), frames  # never cut off
    shown = screen(output)
    assert not [line for line in shown if "%|" in line], shown[-10:]  # no bar left behind
    assert any("KeyboardInterrupt" in line or "interrupted" in line for line in shown), shown[-10:]
