"""A large directory's sorted child names, and what is derived from them.

The tree hands out the same Listing until the directory changes, so the wire
layer keeps a listing's encoding on it and encodes a busy directory once. It
is its own module so that the wire layer needs nothing of the tree.
"""


class Listing(tuple):
    """A large directory's sorted child names, the same object from one change
    to the next, so whatever is derived from it (its wire encoding) can be
    kept on it and goes when the directory changes."""

    wire = None  # its encoding as a wire vector of strings, once encoded
