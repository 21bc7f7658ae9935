"""make install lays out a usable installation; the man pages render without warnings."""
import os
import re
import subprocess

from conftest import ROOT

MAN_PAGES = ("man/presenced.8", "man/presenced.conf.5", "man/presence.7", "man/presencectl.1")


def test_make_install_honours_prefix_and_destdir(workdir):
    dest = os.path.join(workdir, "pkg")
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr",
                    "SYSCONFDIR=/etc"], check=True, capture_output=True, timeout=300)
    for path in ("usr/sbin/presenced", "usr/bin/presencectl", "usr/share/man/man1/presencectl.1",
                 "etc/presenced.conf", "usr/share/man/man8/presenced.8",
                 "usr/share/man/man5/presenced.conf.5", "usr/share/man/man7/presence.7",
                 "usr/lib/systemd/system/presenced.service"):
        assert os.path.exists(os.path.join(dest, path)), path
    conf = open(os.path.join(dest, "etc/presenced.conf")).read()
    assert "data_dir /var/lib/presenced" in conf
    # The development issuer is for `make run` only: an installed server never has it on.
    assert re.search(r"^dev_issuer off$", conf, re.M) and not re.search(r"^dev_issuer on", conf, re.M)
    unit = open(os.path.join(dest, "usr/lib/systemd/system/presenced.service")).read()
    assert "ExecStart=/usr/sbin/presenced -f -c /etc/presenced.conf" in unit
    assert "@" not in unit.replace("@.service", "")
    check = subprocess.run([os.path.join(dest, "usr/sbin/presenced"), "-t", "-c",
                            os.path.join(dest, "etc/presenced.conf")], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    # A second install keeps the operator's file.
    with open(os.path.join(dest, "etc/presenced.conf"), "a") as f:
        f.write("# edited by the operator\n")
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr",
                    "SYSCONFDIR=/etc"], check=True, capture_output=True, timeout=300)
    assert "edited by the operator" in open(os.path.join(dest, "etc/presenced.conf")).read()
    assert os.path.exists(os.path.join(dest, "etc/presenced.conf.new"))


def test_man_pages_render_without_warnings():
    for page in MAN_PAGES:
        result = subprocess.run(["man", "--warnings=w", "-l", os.path.join(ROOT, page)],
                                capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, MANWIDTH="80", MAN_KEEP_STDERR="1"))
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", f"{page}: {result.stderr}"
        assert len(result.stdout) > 500


def test_every_config_key_is_documented():
    text = open(os.path.join(ROOT, "common", "config.c")).read()
    start = text.index("key_specs[] = {")
    keys = [line.split('"')[1] for line in text[start:text.index("};", start)].splitlines()
            if line.strip().startswith('{ "')]
    assert len(keys) > 20
    manual = open(os.path.join(ROOT, "man", "presenced.conf.5")).read()
    items = re.findall(r"^\.TP\n(.*)$", manual, re.M)  # the term line of each item
    for key in keys:
        assert any(re.search(rf"(^|[ \\fP]){key}\b", item) for item in items), key


def test_text_after_an_example_inside_an_item_stays_in_the_item():
    """An example (.RS/.RE) inside a .TP or .IP item ends with .RE, which puts the margin back at
    the page's: text that goes on about the item needs an .IP first, or it reads as the next
    paragraph of the section (as vapid_key's did in presenced.conf(5))."""
    for page in MAN_PAGES:
        lines = open(os.path.join(ROOT, page)).read().splitlines()
        in_item = False
        for number, line in enumerate(lines, 1):
            if re.match(r"\.(TP|IP)\b", line):
                in_item = True
            elif re.match(r"\.(SH|SS|PP|P|LP)\b", line):
                in_item = False
            elif line.startswith(".RE") and in_item and number < len(lines):
                assert re.match(r"\.(IP|TP|SH|SS|PP|P|LP|RE)\b", lines[number]), \
                    f"{page}:{number + 1}: {lines[number]}"

