"""Start-up: config errors are one line and exit 2; a corrupt log tail is cut, not applied."""

import sqlite3
import subprocess
import sys

import yaml
from kazoo.client import KazooClient

from harness import SERVER_BIN, free_port


def run_server(config_path, cwd):
    return subprocess.run([sys.executable, str(SERVER_BIN), str(config_path)],
                          capture_output=True, text=True, timeout=30, cwd=str(cwd))


def test_bad_configs_stop_start_up_with_one_line_and_exit_2(tmp_path):
    good = {"server_id": 1, "client_address": f"127.0.0.1:{free_port()}",
            "data_dir": str(tmp_path / "data")}
    cases = {
        "unknown key": ({**good, "colour": "blue"}, "colour"),
        "missing id": ({k: v for k, v in good.items() if k != "server_id"}, "server_id"),
        "bad port": ({**good, "client_address": "127.0.0.1:99999"}, "client_address"),
        "bad address": ({**good, "client_address": "nonsense"}, "client_address"),
        "data dir": ({**good, "data_dir": "/proc/nookeeper-cannot"}, "data_dir"),
    }
    for name, (config, key) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(yaml.safe_dump(config))
        result = run_server(path, tmp_path)
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and key in lines[0], (name, lines)
        assert "Traceback" not in result.stderr
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("server_id: [1\n")
    result = run_server(not_yaml, tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = run_server(tmp_path / "absent.yaml", tmp_path)
    assert result.returncode == 2 and "absent.yaml" in result.stderr


def test_corrupt_log_tail_is_cut_logged_and_never_applied(server):
    zk = KazooClient(hosts=server.hosts)
    zk.start(timeout=10)
    zk.create("/kept", b"1")
    zk.create("/doomed", b"2")
    zk.stop()
    zk.close()
    server.kill()
    db = sqlite3.connect(server.workdir / "data" / "nookeeper.db")
    last = db.execute("SELECT max(zxid) FROM txnlog").fetchone()[0]
    doomed = db.execute(
        "SELECT zxid FROM txnlog WHERE instr(body, CAST('/doomed' AS BLOB)) > 0"
    ).fetchone()[0]
    db.execute("UPDATE txnlog SET body = substr(body, 1, length(body) - 3) WHERE zxid = ?",
               (doomed,))
    db.commit()
    db.close()
    server.start()
    zk = KazooClient(hosts=server.hosts)
    zk.start(timeout=10)
    assert zk.get("/kept")[0] == b"1"
    assert zk.exists("/doomed") is None
    zk.create("/after", b"3")  # the server writes on from the cut
    zk.stop()
    zk.close()
    log = server.log_path.read_text()
    assert "fails its crc check" in log and f"0x{doomed:x}" in log
    assert last >= doomed
