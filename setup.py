import re
from pathlib import Path

from setuptools import find_packages, setup

# Read, not imported: importing the package would need its dependencies installed first.
VERSION = re.search(r'^__version__ = "([^"]+)"',
                    Path(__file__).with_name("nookeeper").joinpath("__init__.py").read_text(),
                    re.M).group(1)

setup(
    name="nookeeper",
    version=VERSION,
    description="A ZooKeeper-compatible coordination service in Python",
    packages=find_packages(include=["nookeeper", "nookeeper.*"]),
    python_requires=">=3.11",
    install_requires=["construct", "sqlite-utils", "pyyaml", "prometheus-client"],
    extras_require={"test": ["pytest", "pytest-timeout", "kazoo", "hypothesis"]},
    scripts=["bin/nookeeper-server", "bin/nk-ensemble", "bin/nk", "bin/nk-dump"],
)
