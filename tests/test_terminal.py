"""Seen in a real terminal: terminal IPython on a pseudo-terminal of 80, 100 and 120 columns shows the
table within the width (at most 100 columns), notes under their rows, and colour for pass / fail;
with NO_COLOR set, or with the output piped to a log, there is no colour at all."""

from __future__ import annotations

import os
import re
import select
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SETUPS, source
from test_planted_bugs import SEED_FIX

fcntl = pytest.importorskip("fcntl", reason="pseudo-terminals need a POSIX system")
termios = pytest.importorskip("termios", reason="pseudo-terminals need a POSIX system")

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 120
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")  # SGR and the like; titles
COLOUR_CODE = re.compile(r"\x1b\[[0-9;]*m")  # SGR: what colours text (the prompt's cursor codes are not)
FAIL_COLOUR, PASS_COLOUR = "\x1b[1;31m", "\x1b[32m"


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("terminal") / "check.ipy"
    path.write_text(
        "\n".join(
            [
                "import numpy as np",
                source("seed_net", replace=SEED_FIX),
                SETUPS["seed_net"],
                "%load_ext gradcheck_magic",
                "%gradcheck_config widgets=false progress=false",
                "%gradcheck",
                "",
            ]
        )
    )
    return path


def ipython(script: Path, columns: int | None, **env_extra) -> str:
    """Run the script in terminal IPython, on a pseudo-terminal ``columns`` wide (None: piped)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    env.update(
        TERM="xterm-256color",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        **env_extra,
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
    if columns is None:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return done.stdout
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(
        command, env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], RUN_SECONDS)
            if not ready:
                pytest.fail("terminal IPython did not finish")
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
        process.wait(timeout=RUN_SECONDS)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def table_lines(output: str) -> list:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "gradient check failed" in line)
    end = next(i for i, line in enumerate(lines) if ANSI_CODE.sub("", line).startswith("checked:"))
    return lines[start : end + 1]


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_table_fits_a_real_terminal_in_colour(script, columns):
    lines = table_lines(ipython(script, columns))
    visible = [ANSI_CODE.sub("", line) for line in lines]
    assert max(len(line) for line in visible) <= min(columns, 100), visible
    rows = {
        line.split()[0]: line
        for line in visible
        if line[:1].strip() and line.split()[0] in ("W1", "b1", "W2", "b2", "W3", "b3")
    }
    assert set(rows) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    b1 = visible.index(rows["b1"])
    assert visible[b1 + 1].startswith("    analytic ≈ 4.00 × numeric")  # the note under its row
    coloured = "\n".join(lines)
    assert f"{FAIL_COLOUR}FAIL" in coloured and f"{PASS_COLOUR}pass" in coloured


def test_no_colour_with_no_color_set(script):
    lines = table_lines(ipython(script, 100, NO_COLOR="1"))
    assert not any(COLOUR_CODE.search(line) for line in lines)
    assert any("FAIL" in line for line in lines)


def test_no_colour_in_a_pipe(script):
    output = ipython(script, None)
    lines = table_lines(output)
    assert not COLOUR_CODE.search(output)
    assert max(len(line) for line in lines) <= 100
