"""Mutual exclusion checked from the timelines tests/lock_timeline_worker.py records.

A process holds the lock from its "acquired" event until the earliest of its
next "release_called" and the first SUSPENDED or LOST state event it heard
in between: once a client is told its connection is suspended or lost it
must no longer count on the lock (kazoo's documentation says so), so any
later overlap is not the lock's fault. A hold with no end runs to `end`.
Two processes' holds overlapping is a violation.

Recorded holds are conservative: "acquired" is written after acquire()
returned and "release_called" before release() is called, so a recorded
hold lies inside the time the process really held the lock.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

CUTTING_STATES = ("SUSPENDED", "LOST")


@dataclass
class Hold:
    process: str
    start: float
    end: float
    ended_by: str  # "release_called", "SUSPENDED", "LOST" or "end of timeline"


def load(path):
    """One worker's events, in time order."""
    events = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return sorted(events, key=lambda event: event["t"])


def holds(process, events, end=math.inf):
    """One process's holds, each cut at its first SUSPENDED or LOST."""
    found = []
    start = None
    for event in events:
        if start is None:
            if event["event"] == "acquired":
                start = event["t"]
            continue
        if event["event"] == "release_called":
            found.append(Hold(process, start, event["t"], "release_called"))
            start = None
        elif event["event"] == "state" and event.get("state") in CUTTING_STATES:
            found.append(Hold(process, start, event["t"], event["state"]))
            start = None
    if start is not None:
        found.append(Hold(process, start, end, "end of timeline"))
    return found


def overlaps(timelines, end=math.inf):
    """Every pair of overlapping holds of different processes: [(earlier, later)]."""
    every = sorted((hold for process, events in timelines.items()
                    for hold in holds(process, events, end)), key=lambda hold: hold.start)
    found = []
    for i, first in enumerate(every):
        for second in every[i + 1:]:
            if second.start >= first.end:
                break
            if second.process != first.process:
                found.append((first, second))
    return found


def excerpt(timelines, processes, start, end, margin=1.0):
    """Both processes' events around a violation, merged in time order."""
    rows = [(event["t"], process, event) for process in processes
            for event in timelines[process] if start - margin <= event["t"] <= end + margin]
    lines = []
    for t, process, event in sorted(rows, key=lambda row: row[0]):
        fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("t", "event"))
        lines.append(f"  {t:.3f} {process:>4} {event['event']} {fields}".rstrip())
    return "\n".join(lines)


def report(timelines, end=math.inf, limit=3):
    """Empty when exclusion held; otherwise a description of the first violations."""
    found = overlaps(timelines, end)
    parts = []
    for first, second in found[:limit]:
        until = min(first.end, second.end)
        parts.append(
            f"{first.process} held {first.start:.3f}-{first.end:.3f} (until {first.ended_by}) "
            f"while {second.process} held {second.start:.3f}-{second.end:.3f} "
            f"(until {second.ended_by}):\n"
            + excerpt(timelines, (first.process, second.process),
                      first.start, second.start if until == math.inf else until))
    if len(found) > limit:
        parts.append(f"... and {len(found) - limit} more overlapping pairs")
    return "\n".join(parts)


def count(events, event, state=None):
    """Events of a kind up to "stopped": the LOST a client reports when the
    worker closes it at the end is not one the servers caused."""
    total = 0
    for e in events:
        if e["event"] == "stopped":
            break
        total += e["event"] == event and (state is None or e.get("state") == state)
    return total


def foreign_holds(events):
    """Holds by a node another session of ours created: the Lock took it up after
    its session was lost, and that node goes when the old session ends."""
    return sum(1 for e in events if e["event"] == "owner" and e.get("owner")
               and e.get("session") and e["owner"] != e["session"])
