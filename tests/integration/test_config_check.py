"""presenced -t, -v and bad configurations."""
import os
import subprocess

from conftest import BINARY


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def test_a_good_file_passes(workdir):
    path = write(os.path.join(workdir, "good.conf"), "listen 127.0.0.1:9999\nworkers 2\n")
    result = run("-t", "-c", path)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_the_shipped_config_passes():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = run("-t", "-c", os.path.join(root, "etc", "presenced.conf"))
    assert result.returncode == 0, result.stderr


def test_a_bad_file_names_file_and_line(workdir):
    path = write(os.path.join(workdir, "bad.conf"), "# comment\nworkers 2\nping_interval soon\n")
    result = run("-t", "-c", path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:3: ping_interval"), result.stderr


def test_unknown_keys_are_errors(workdir):
    path = write(os.path.join(workdir, "bad.conf"), "workers 2\nwrokers 3\n")
    result = run("-t", "-c", path)
    assert result.returncode == 1
    assert f"{path}:2: unknown key 'wrokers'" in result.stderr


def test_a_missing_file(workdir):
    result = run("-t", "-c", os.path.join(workdir, "absent.conf"))
    assert result.returncode == 1
    assert "absent.conf:0: cannot open" in result.stderr


def test_version_and_usage():
    result = run("-v")
    assert result.returncode == 0 and result.stdout.startswith("presenced ")
    result = run("-x")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_start_refuses_a_bad_file_before_forking(workdir):
    path = write(os.path.join(workdir, "bad.conf"), "listen nowhere:80\n")
    result = run("-f", "-c", path)
    assert result.returncode == 1
    assert f"{path}:1: listen" in result.stderr


def test_a_port_in_use_is_reported(make_server):
    first = make_server().start()
    second = make_server(listen=f"127.0.0.1:{first.port}")
    # Only SO_REUSEPORT sockets of the same user share a port; a plain listener blocks it.
    import socket
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    second.write_config(listen=f"127.0.0.1:{blocker.getsockname()[1]}")
    second.start(wait=False)
    assert second.proc.wait(timeout=15) == 1
    assert "cannot listen" in second.log_text()
    blocker.close()
