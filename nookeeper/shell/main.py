"""bin/nk: interactive shell, or one command then exit (`nk -s host:port ls /`).

Exit status in one-shot mode: 0 success; 1 the command failed, whether the
server refused it, the connection failed or the command was mistyped (the
error's name first on stderr: NoNodeError, ConnectionLoss, UsageError...);
2 only when nk's own options (-s, --json, --timeout) are wrong.
"""

import argparse
import logging
import os
import shlex
import sys

from nookeeper.shell import interactive, render
from nookeeper.shell.commands import COMMANDS, CommandFailure, Shell
from nookeeper.shell.session import ShellSession

DEFAULT_HOSTS = "127.0.0.1:2181"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nk",
        description="ZooKeeper shell for nookeeper and Apache ZooKeeper. "
                    "With a command, runs it and exits; without, starts the interactive shell.",
        epilog="Options go before the command: nk -s 127.0.0.1:2181 --json get -s /app. "
               "Type `nk help` for the commands.",
    )
    parser.add_argument("-s", "-server", "--server", dest="server", default=DEFAULT_HOSTS,
                        metavar="HOSTS",
                        help="host:port[,host:port...][/chroot] (default %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print every result, event and error as a JSON document")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a connection and for each reply "
                             "(default %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="client log lines on stderr")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="a command and its arguments (run once, then exit)")
    return parser


def main(argv=None):
    """The exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code
    if args.timeout <= 0:
        parser.print_usage(sys.stderr)
        print("nk: error: --timeout must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL + 1,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    session = ShellSession(args.server, timeout=args.timeout)
    try:
        if args.command:
            return one_shot(session, args.command, args.json)
        console = interactive.Console(sys.stdin, sys.stdout, sys.stderr, as_json=args.json,
                                      terminal=sys.stdin.isatty() and sys.stdout.isatty())
        return interactive.run(session, console)
    except KeyboardInterrupt:
        session.close()
        return 130
    except BrokenPipeError:
        # `nk ls -R / | head`: the reader left; say nothing more, not even at exit.
        session.close()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def one_shot(session, words, as_json):
    """Connect (unless the command needs no session), run one command, print, close."""
    session.print_watches = False
    command = COMMANDS.get(words[0])
    shell = Shell(session)
    try:
        try:
            if command is not None and command.needs_session:
                shell.run(["connect"])
            result = shell.run_line(shlex.join(words))
        finally:
            session.close()
    except CommandFailure as failure:
        print(render.failure_output(failure, as_json), file=sys.stderr)
        return 1
    shown = render.result_output(result, as_json)
    if shown is not None:
        print(shown)
    return 0

