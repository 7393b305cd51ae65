"""ZAB as a pure state machine: events in, actions out; no sockets, threads, clock or disk."""
