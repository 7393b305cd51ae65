"""Sample configs installed with the package, printed by
`nookeeper-server --example-config [standalone|node]`.

They are copies of the checkout's etc/standalone.yaml and etc/node1.yaml
(tests/tools/test_packaging.py fails when they differ: copy etc/ over them).
"""

from importlib import resources

# --example-config NAME -> the file here; the first is the default.
EXAMPLES = {"standalone": "standalone.yaml", "node": "node.yaml"}


def example_config(name="standalone"):
    """The text of one sample config."""
    return resources.files(__name__).joinpath(EXAMPLES[name]).read_text(encoding="utf-8")
