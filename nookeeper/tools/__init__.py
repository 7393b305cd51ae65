"""Operator tools that drive nookeeper servers from outside (bin/nk-*)."""
