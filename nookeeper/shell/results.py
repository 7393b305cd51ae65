"""What a command returns: plain values that render.py shows as text or JSON.

Commands never print; keeping results as data lets one-shot, interactive
and --json output share one implementation of every command.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Children:
    """ls; `stat` only with -s."""

    path: str
    names: list
    stat: object = None


@dataclass(frozen=True)
class Tree:
    """ls -R: the node and everything under it, breadth first."""

    path: str
    paths: list


@dataclass(frozen=True)
class Data:
    """get; `value` is bytes or None (a node created without data), `stat` only with -s."""

    path: str
    value: object
    stat: object = None


@dataclass(frozen=True)
class NodeStat:
    """stat, set, setAcl; `shown` says whether text output prints the stat (set -s)."""

    path: str
    stat: object
    shown: bool = True


@dataclass(frozen=True)
class Created:
    path: str


@dataclass(frozen=True)
class Acl:
    """getAcl; `stat` only with -s."""

    path: str
    entries: list
    stat: object = None


@dataclass(frozen=True)
class Done:
    """Everything else: the text to print (None: print nothing) and the JSON document's fields."""

    text: object = None
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """config: /zookeeper/config's data (bytes or None); `client` the connect string
    of `config -c`, `stat` only with -s."""

    path: str
    value: object
    client: object = None
    stat: object = None


@dataclass(frozen=True)
class QuotaListing:
    """listquota: the quota's limits and usage (quotas.StatsTrack) and where the limits are."""

    path: str
    limit_path: str
    limits: object
    usage: object
