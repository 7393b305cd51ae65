"""bin/nk: an interactive and one-shot ZooKeeper shell in the manner of zkCli.sh.

main.py reads the command line, interactive.py runs the readline loop,
commands.py parses and runs one command against a ShellSession (session.py),
render.py turns results into zkCli-style text or JSON.
"""
