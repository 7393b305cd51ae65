"""bin/nk as a person uses it: on a pseudo-terminal, with readline, completion and watches.

Every test runs against nookeeper and Apache ZooKeeper 3.8 (the `backend`
fixture) but those marked NOOKEEPER_ONLY, which test the shell's own side.
Keys are sent as a terminal sends them: "\\t" for Tab, "\\x1b[A" for the
Up arrow, "\\x04" for Ctrl-D.
"""

import json
import re
import signal

import pytest

from nkprocess import run_nk

UP = "\x1b[A"
CTRL_D = "\x04"

# For tests of the shell alone (parsing, history, rendering): the server's
# answers do not matter, so running them against ZooKeeper too would only add time.
NOOKEEPER_ONLY = pytest.mark.parametrize("backend", ["nookeeper"], indirect=True)


def prompt(number):
    """The prompt before command `number`, as the regex that finds it."""
    return rf"\[nk: [^\]]*\(CONNECTED\) {number}\] "


def interrupt(term):
    """SIGINT, until nk shows a fresh prompt.

    CPython's input() notices a signal only when it interrupts readline's
    wait for a key; one that lands while a key is being handled is held
    until the next signal, so a single SIGINT right after typing can be missed.
    """
    for _ in range(20):
        term.proc.send_signal(signal.SIGINT)
        try:
            return term.expect(r"\n" + prompt(r"\d+") + "$", timeout=0.5)
        except AssertionError:
            continue
    raise AssertionError(f"no fresh prompt after SIGINT: {term.output[-500:]!r}")


def started(terminal):
    term = terminal()
    term.expect(prompt(0))
    return term


def test_tab_completes_a_command_and_paths_from_the_server(terminal, client, base):
    client.create(f"{base}/apple", b"fruit")
    client.create(f"{base}/apricot", b"")
    client.create(f"{base}/banana", b"")
    term = started(terminal)

    # A command: "getAc" has one completion, "getAcl ", space included.
    term.send("getAc\t")
    term.expect(r"getAcl $")
    term.send(f"{base}\n")
    term.expect(r"'world,'anyone\n: cdrwa\n")
    term.expect(prompt(1))

    # A path: one match completes in place...
    term.send(f"get {base}/b\t")
    term.expect(re.escape(f"get {base}/banana"))
    term.send("\x15")                          # Ctrl-U: clear the line
    term.send(f"get {base}/app\t\n")
    term.expect(r"\nfruit\n")
    term.expect(prompt(2))

    # ...and several are listed on a second Tab, from the server's current children.
    client.create(f"{base}/apex", b"")
    term.send(f"ls {base}/ap\t\t")
    listing = term.expect(r"\n(.*apex.*)\n")
    assert listing.group(1).split() == [f"{base}/apex", f"{base}/apple", f"{base}/apricot"]
    term.send("\x15quit\n")
    assert term.wait() == 0


def test_a_watch_event_is_printed_as_it_arrives(terminal, client, base):
    node = f"{base}/watched"
    client.create(node, b"v1")
    term = started(terminal)
    term.send(f"get -w {node}\n")
    term.expect(r"\nv1\n")
    term.expect(prompt(1))

    # Half a command typed when the event comes: it is printed, then the line drawn again.
    term.send("ls ")
    client.set(node, b"v2")
    term.expect(r"\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged "
                + re.escape(f"path:{node}") + r"\n")
    term.expect(prompt(1) + "ls $")
    term.send(f"{base}\n")
    term.expect(r"\[watched\]\n")

    # Child and exists watches too (stat -w on a missing node waits for its creation).
    term.send(f"ls -w {base}\n")
    term.expect(prompt(3))
    term.send(f"stat -w {base}/later\n")
    term.expect(rf"NoNodeError: Node does not exist: {re.escape(base)}/later\n")
    client.create(f"{base}/later", b"")
    term.expect(r"type:NodeCreated " + re.escape(f"path:{base}/later") + r"\n")
    term.expect(r"type:NodeChildrenChanged " + re.escape(f"path:{base}") + r"\n")

    # Each watch fired once: these changes print nothing before the next watch's event.
    client.set(node, b"v3")
    client.delete(f"{base}/later")
    term.send(f"get -w {node}\n")
    term.expect(r"\nv3\n")
    client.set(node, b"v4")
    quiet = term.expect(r"WATCHER::\n\nWatchedEvent (.*)\n")
    assert quiet.group(1) == f"state:SyncConnected type:NodeDataChanged path:{node}"

    # The shell's own change: the event comes before the command's result and prompt.
    term.send(f"get -w {node}\n")
    term.expect(prompt(6))
    term.send(f"set -s {node} mine\n")
    term.expect(r"\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged "
                + re.escape(f"path:{node}") + r"\ncZxid = ")
    term.expect(prompt(7))
    term.send("quit\n")
    assert term.wait() == 0


@NOOKEEPER_ONLY
def test_history_redo_and_the_up_arrow(terminal, client, base):
    node = f"{base}/h"
    term = started(terminal)
    for number, line in enumerate([f"create {node} one", f"get {node}", f"set {node} two"]):
        term.send(line + "\n")
        term.expect(prompt(number + 1))
    term.send("history\n")
    term.expect(f"0 - create {re.escape(node)} one\n1 - get {re.escape(node)}\n"
                f"2 - set {re.escape(node)} two\n3 - history\n")
    term.expect(prompt(4))

    # A redo is numbered as the command it ran; a failed one stays as typed.
    term.send("redo 1\n")
    term.expect(r"\ntwo\n")
    term.expect(prompt(5))
    term.send("redo 99\n")
    term.expect(r"UsageError: no command number 99 in the history\n")
    term.expect(prompt(6))
    term.send("redo 5\n")
    term.expect(r"UsageError: command 5 is itself a redo\n")
    term.expect(prompt(7))

    # readline's own history: Up three times is "redo 1" again.
    client.set(node, b"three")
    term.send(UP * 3 + "\n")
    term.expect(r"\nthree\n")
    term.send("history\n")
    term.expect(f"4 - get {re.escape(node)}\n5 - redo 99\n6 - redo 5\n"
                f"7 - get {re.escape(node)}\n8 - history\n")

    term.send("quit\n")
    assert term.wait() == 0
    saved = term.history.read_text()
    assert f"set {node} two" in saved and "redo 1" in saved

    # The next session starts from the saved history.
    term = started(terminal)
    term.send(UP + "\n")
    term.expect(r"quit\n")
    assert term.wait() == 0


def test_quit_and_end_of_input_close_the_session(terminal, client, base):
    term = started(terminal)
    term.send(f"create -e {base}/mine\n")
    term.expect(prompt(1))
    assert client.exists(f"{base}/mine") is not None
    term.send("quit\n")
    assert term.wait() == 0
    assert client.exists(f"{base}/mine") is None

    term = started(terminal)
    term.send(f"create -e {base}/mine\n")
    term.expect(prompt(1))
    term.send(CTRL_D)
    assert term.wait() == 0
    assert client.exists(f"{base}/mine") is None


@NOOKEEPER_ONLY
def test_bad_input_keeps_the_shell_going(terminal, base):
    term = started(terminal)
    for line, error in [
        ("frobnicate /", "UsageError: unknown command 'frobnicate' (try: help)"),
        ("ls -x /", "UsageError: option -x not recognized; usage: ls [-s] [-w] [-R] path"),
        ("get", "UsageError: usage: get [-s] [-w] path"),
        ("get relative", "UsageError: path must start with /: 'relative'"),
        (f"setAcl {base} world-anyone",
         "UsageError: ACL entry 'world-anyone' is not scheme:id:perms"),
        (f"create {base}/x d world:anyone:rq", "UsageError: unknown permission 'q'"),
        (f"delete -v x {base}", "UsageError: version must be a number: x"),
        ("get 'open", "UsageError: cannot parse the line: No closing quotation"),
        (f"get {base}/missing", "NoNodeError: Node does not exist: "),
    ]:
        term.send(line + "\n")
        term.expect(re.escape(error))
    term.send(f"get {base}\n")
    term.expect(r"\n\n" + prompt(r"\d+"))      # the base node's data is empty

    # Ctrl-C (SIGINT: the test's terminal is not nk's controlling one) drops the line.
    term.send("delete /zookeeper")
    term.expect("delete /zookeeper")
    interrupt(term)
    term.send(f"get {base}\n")
    term.expect(r"\n\n" + prompt(r"\d+"))      # not "delete /zookeeperget ..."
    term.send("close\n")
    term.expect(r"\(CLOSED\) \d+\] ")
    term.send(f"ls {base}\n")
    term.expect(r"ConnectionClosedError: not connected \(use: connect host:port\)\n")
    term.send("connect\n")
    term.expect(r"\(CONNECTED\) \d+\] ")
    term.send(f"ls {base}\n")
    term.expect(r"\[\]\n")
    term.send("quit\n")
    assert term.wait() == 0
    assert "Traceback" not in term.output


def test_commands_from_a_pipe(backend, base):
    """Without a terminal: no prompt, errors on stderr, every command still runs."""
    script = f"create {base}/p one\nfrobnicate\nget {base}/p\nprintwatches\n"
    result = run_nk("-s", backend.hosts, input=script)
    assert result.returncode == 0
    assert result.stdout == f"Created {base}/p\none\nprintwatches is on\n"
    assert result.stderr == "UsageError: unknown command 'frobnicate' (try: help)\n"

    # With --json, one document per line on each stream.
    script = f"get {base}/p\nget {base}/nothing\nls {base}\n"
    result = run_nk("-s", backend.hosts, "--json", input=script)
    assert result.returncode == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"path": f"{base}/p", "data": "one", "encoding": "utf-8"},
        {"path": base, "children": ["p"]}]
    assert [json.loads(line)["error"] for line in result.stderr.splitlines()] == ["NoNodeError"]
