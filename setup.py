"""Only the build time: the package's metadata, dependencies, test extras and
console scripts are in pyproject.toml (add test dependencies there).

A wheel built from here carries nookeeper/_build.py with the time it was built
(SOURCE_DATE_EPOCH when set, for reproducible builds), which srvr's "built on"
shows; an editable install of a git checkout shows HEAD's commit date instead
(nookeeper.build_time)."""

import os
import time

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTime(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout itself is imported: its commit date serves
        built = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
        target = os.path.join(self.build_lib, "nookeeper", "_build.py")
        with open(target, "w", encoding="ascii") as f:
            f.write(f'"""Written when this package was built (setup.py)."""\n\n'
                    f"BUILD_TIME = {built}\n")


setup(cmdclass={"build_py": BuildPyWithTime})
