"""bin/nk: interactive shell, or one command then exit (`nk -s host:port ls /`).

Exit status in one-shot mode: 0 success; 1 the command failed, whether the
server refused it, the connection failed or the command was mistyped (the
error's name first on stderr: NoNodeError, ConnectionLoss, UsageError...);
2 only when nk's own options (-s, --json, --timeout, the --tls files) are
wrong.
"""

import argparse
import getpass
import logging
import os
import shlex
import sys
import warnings

from nookeeper import version_text
from nookeeper.shell import interactive, render, status
from nookeeper.shell.commands import COMMANDS, CommandFailure, Shell
from nookeeper.shell.session import ShellSession

DEFAULT_HOSTS = "127.0.0.1:2181"
# Where --sasl-user's password comes from: never the command line, which others can read.
SASL_PASSWORD_ENV = "NK_SASL_PASSWORD"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nk",
        description="ZooKeeper shell for nookeeper and Apache ZooKeeper. "
                    "With a command, runs it and exits; without, starts the interactive shell.",
        epilog="Options go before the command: nk -s 127.0.0.1:2181 --json get -s /app. "
               "Type `nk help` for the commands.",
    )
    parser.add_argument("-s", "-server", "--server", dest="server", default=None,
                        metavar="HOSTS",
                        help=f"host:port[,host:port...][/chroot] (default {DEFAULT_HOSTS}; "
                             f"for status and health {status.LOCAL_ENSEMBLE})")
    parser.add_argument("--json", action="store_true",
                        help="print every result, event and error as a JSON document")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a connection and for each reply "
                             "(default %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="client log lines on stderr")
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--sasl-user", metavar="USER",
                        help="authenticate with SASL (DIGEST-MD5) as USER; the password is "
                             f"read from ${SASL_PASSWORD_ENV} or asked for at the terminal")
    tls = parser.add_argument_group("TLS", "for a secure client port (as kazoo's use_ssl)")
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS (implied by the --tls-* options)")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="client certificate (PEM): the session's x509 identity")
    tls.add_argument("--tls-key", metavar="FILE", help="its private key (PEM, unencrypted)")
    tls.add_argument("--tls-ca", metavar="FILE",
                     help="CA certificates (PEM) for the server's certificate, with the system's")
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
    try:
        client_options = tls_options(args)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"nk: error: {exc}", file=sys.stderr)
        return 2
    sasl_options = None
    if args.sasl_user is not None:
        password = sasl_password(args.sasl_user)
        if password is None:
            parser.print_usage(sys.stderr)
            print(f"nk: error: --sasl-user needs a password: set {SASL_PASSWORD_ENV} or run "
                  "nk at a terminal to be asked for it", file=sys.stderr)
            return 2
        sasl_options = {"mechanism": "DIGEST-MD5", "username": args.sasl_user,
                        "password": password}
    hosts = args.server or status.default_hosts(args.command) or DEFAULT_HOSTS
    session = ShellSession(hosts, timeout=args.timeout, client_options=client_options,
                           sasl_options=sasl_options)
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


def tls_options(args):
    """KeeperClient's TLS keyword arguments from the --tls options; ValueError
    naming the option for a missing or unusable file."""
    if not (args.tls or args.tls_cert or args.tls_key or args.tls_ca):
        return {}
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    for option, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                         ("--tls-ca", args.tls_ca)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{option}: {path}: no such file")
    options = {"use_ssl": True, "certfile": args.tls_cert, "keyfile": args.tls_key,
               "ca": args.tls_ca}
    from nookeeper.client.tls import client_context
    try:
        client_context(options["ca"], options["certfile"], options["keyfile"])
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ValueError(f"cannot use the TLS files: {getattr(exc, 'reason', None) or exc}")
    return options


def sasl_password(user):
    """--sasl-user's password: $NK_SASL_PASSWORD, else asked at the terminal
    (not echoed); None when neither is there (a script, a pipe without it)."""
    password = os.environ.get(SASL_PASSWORD_ENV)
    if password:
        return password
    with warnings.catch_warnings():
        # getpass falls back to echoing on stdin without a terminal: refuse that.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(f"SASL password for {user}: ") or None
        except (getpass.GetPassWarning, OSError, EOFError):
            return None


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
    return getattr(result, "exit_status", 0)  # status and health: 1 when unhealthy

