"""The bin/ scripts of a checkout: run a command's main() with or without the
project's virtualenv active.

`bin/nk ...` may be started by any python3 on PATH. When that interpreter
lacks nookeeper's dependencies (or is older than 3.11) and the checkout has
a .venv (made by `make venv`), the script is run again under .venv/bin/python,
with the same arguments and environment; without one, it says how to get one.
This module imports nothing beyond the standard library, so that any python3
can get this far. Installed packages need none of it: pip makes console
scripts (pyproject.toml's [project.scripts]) that call the same main()s.
"""

import importlib
import importlib.util
import os
import sys

# The modules of pyproject.toml's dependencies.
REQUIRED_MODULES = ("construct", "sqlite_utils", "yaml", "prometheus_client")
MIN_PYTHON = (3, 11)
# Set on the re-run, so a .venv that lacks the dependencies too cannot loop.
_RERUN = "NOOKEEPER_CHECKOUT_RERUN"


def missing_modules():
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def run(script, module_name):
    """main() of module_name, run here or under the checkout's .venv; the exit status."""
    script = os.path.abspath(script)
    root = os.path.dirname(os.path.dirname(script))
    missing = missing_modules()
    too_old = sys.version_info < MIN_PYTHON
    if missing or too_old:
        venv = os.path.join(root, ".venv")
        venv_python = os.path.join(venv, "bin", "python")
        in_venv = os.path.realpath(sys.prefix) == os.path.realpath(venv)
        if os.path.exists(venv_python) and not in_venv and not os.environ.get(_RERUN):
            os.environ[_RERUN] = "1"
            os.execv(venv_python, [venv_python, script, *sys.argv[1:]])
        prog = os.path.basename(script)
        lacks = (f"is Python {sys.version.split()[0]}, older than 3.11" if too_old
                 else f"lacks {', '.join(missing)}")
        where = ("" if not os.path.exists(venv_python)
                 else f" (so does {venv_python})" if in_venv or os.environ.get(_RERUN)
                 else "")
        print(f"{prog}: {sys.executable} {lacks}{where}; run `make venv` in {root}, "
              f"which makes the .venv that bin/ scripts use (or `pip install {root}`)",
              file=sys.stderr)
        return 1
    os.environ.pop(_RERUN, None)  # not inherited by the servers nk-ensemble starts
    return importlib.import_module(module_name).main()
