"""The errors the recipes raise themselves, under the name the recipes use.

They are defined in nookeeper.client.exceptions, with every other client
error; this module only re-exports them.
"""

from nookeeper.client.exceptions import (  # noqa: F401  (re-exported)
    CancelledError,
    LockTimeout,
    UnknownOutcomeError,
)

__all__ = ["CancelledError", "LockTimeout", "UnknownOutcomeError"]
