"""gradcheck_magic: prove a hand-written backpropagation right, or point at the wrong block.

``%load_ext gradcheck_magic`` registers ``%%gradcheck`` and ``%gradcheck_config``.
Scripts call :func:`gradcheck` directly.
"""

from .api import gradcheck
from .errors import GradCheckError
from .result import GradCheckResult
from .settings import Settings

__all__ = [
    "gradcheck",
    "GradCheckResult",
    "GradCheckError",
    "Settings",
    "load_ipython_extension",
    "unload_ipython_extension",
]
__version__ = "0.1.0"


def load_ipython_extension(ipython):
    from .magics import GradCheck

    ipython.register_magics(GradCheck)


def unload_ipython_extension(ipython):
    manager = ipython.magics_manager
    magics = manager.registry.get("GradCheck")
    if magics is not None and magics.watch:
        magics.watch = False  # unhooks its post_run_cell and says so
    for kind, names in (("line", ("gradcheck", "gradcheck_config")), ("cell", ("gradcheck",))):
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop("GradCheck", None)
