"""The bad-input matrix (issue 7): every kind of hostile input, through the real CLI.

Each case puts one bad entry beside a TF1 file (`good.py`) and runs `tf-migrate
apply` in a subprocess, in place and with `--out`. Each must give one clear
line (`path: error: ...` or `path: warning: ...`), leave the bad file
byte-identical (and, with `--out`, mirror it byte for byte where it can be
read), still migrate `good.py` (test rule TFMT01: `tf.layers.batch_normalization`
becomes `tf.compat.v1.layers.batch_normalization`), and exit with the
documented code: 2 when any error was reported, warnings do not change it.
Inputs that parse on the running Python must be processed like any other file.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from tests.conftest import FIXTURES, TEST_RULES, cli_env, run_cli

BAD = FIXTURES / "bad_input"
RULE_ARGS = ("--rules-module", TEST_RULES, "--select", "TFMT01", "-j", "1")
OLD = b"tf.layers.batch_normalization"
NEW = b"tf.compat.v1.layers.batch_normalization"
GOOD = ("import tensorflow as tf\n\n\ndef model(x, is_training):\n"
        "    return tf.layers.batch_normalization(x, training=is_training)\n").encode()
MODES = ("in_place", "out")
PY312 = sys.version_info >= (3, 12)


@dataclass
class Run:
    root: Path  # the input tree
    out: Optional[Path]  # the mirror, or None in place
    rc: int
    stdout: str
    stderr: str

    def result_of(self, name: str) -> Path:
        """Where a file's migrated version is: in place, or in the mirror."""
        return (self.out or self.root) / name

    def lines_about(self, name: str):
        return [line for line in self.stderr.splitlines() if line.startswith(f"{self.root / name}:")]


def snapshot(root: Path):
    """Every entry under root: bytes for files, link targets for links, mode bits for both."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    state[rel] = ("file", handle.read(), stat.S_IMODE(st.st_mode))
            else:
                state[rel] = ("other", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    return state


def make_tree(tmp_path: Path, build: Callable[[Path], None]) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "good.py").write_bytes(GOOD)
    build(root)
    return root


def migrate(tmp_path: Path, root: Path, mode: str, *extra, prefix=(), timeout=120) -> Run:
    out = tmp_path / "out" if mode == "out" else None
    args = ["apply", root, *RULE_ARGS, *extra] + (["--out", out] if out else [])
    if prefix:
        import subprocess
        proc = subprocess.run([*prefix, sys.executable, "-m", "migrate", *map(str, args)],
                              env=cli_env(), capture_output=True, timeout=timeout)
    else:
        proc = run_cli(*args, timeout=timeout)
    return Run(root, out, proc.returncode, proc.stdout.decode(errors="replace"),
               proc.stderr.decode(errors="replace"))


def assert_good_migrated(run: Run) -> None:
    migrated = run.result_of("good.py").read_bytes()
    assert migrated == GOOD.replace(OLD, NEW), run.stderr
    assert "internal error" not in run.stderr + run.stdout
    if run.out is not None:
        assert (run.root / "good.py").read_bytes() == GOOD  # --out never touches the input


def assert_one_line(run: Run, name: str, level: str, pattern: str) -> str:
    lines = run.lines_about(name)
    assert len(lines) == 1, f"expected one line about {name}, got:\n{run.stderr}"
    line = lines[0]
    prefix = f"{run.root / name}: {level}: "
    assert line.startswith(prefix), line
    assert re.search(pattern, line[len(prefix):]), line
    return line


def assert_untouched(run: Run, before, name: str, mirrored: bool = True) -> None:
    """The bad entry is as it was; with --out, its mirror copy is byte-identical too."""
    after = snapshot(run.root)
    assert after[name] == before[name]
    for rel, state in before.items():
        if rel != "good.py":
            assert after.get(rel) == state, rel
    if run.out is not None and mirrored and before[name][0] == "file":
        assert (run.out / name).read_bytes() == before[name][1]
    assert not [p for p in run.root.rglob("*.tf-migrate.tmp")]
    if run.out is not None:
        assert not [p for p in run.out.rglob("*.tf-migrate.tmp")]


def fixture_case(tmp_path, mode, fixture: str, level: str, pattern: str, rc: int = 2):
    root = make_tree(tmp_path, lambda r: shutil.copy2(BAD / fixture, r / fixture))
    before = snapshot(root)
    run = migrate(tmp_path, root, mode)
    assert_one_line(run, fixture, level, pattern)
    assert_untouched(run, before, fixture)
    assert_good_migrated(run)
    assert run.rc == rc, run.stderr
    return run


def processed_case(tmp_path, mode, fixture: str):
    """A fixture that must be migrated like any other file: only the renamed call changes."""
    root = make_tree(tmp_path, lambda r: shutil.copy2(BAD / fixture, r / fixture))
    original = (root / fixture).read_bytes()
    run = migrate(tmp_path, root, mode)
    assert run.rc == 0, run.stderr
    assert run.lines_about(fixture) == []
    assert OLD in original
    assert run.result_of(fixture).read_bytes() == original.replace(OLD, NEW)
    assert_good_migrated(run)
    return run


# -- Python 2, syntax errors, empty ---------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_python2_print_statement(tmp_path, mode):
    fixture_case(tmp_path, mode, "python2_print.py", "error",
                 r"^Python 2 syntax \(print statement\) at line 4.*file left unchanged$")


@pytest.mark.parametrize("mode", MODES)
def test_python2_except_comma(tmp_path, mode):
    fixture_case(tmp_path, mode, "python2_except.py", "error",
                 r"^Python 2 syntax \(`except X, e:`\) at line 5.*file left unchanged$")


@pytest.mark.parametrize("mode", MODES)
def test_syntax_error(tmp_path, mode):
    fixture_case(tmp_path, mode, "syntax_error.py", "error",
                 r"^syntax error at line 3, column \d+: .*; file left unchanged$")


@pytest.mark.parametrize("mode", MODES)
def test_empty_file(tmp_path, mode):
    root = make_tree(tmp_path, lambda r: shutil.copy2(BAD / "empty.py", r / "empty.py"))
    run = migrate(tmp_path, root, mode)
    assert run.rc == 0, run.stderr
    assert run.lines_about("empty.py") == []  # nothing to say about an empty module
    assert run.result_of("empty.py").read_bytes() == b""
    assert_good_migrated(run)


# -- encodings and line endings -------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_non_utf8_without_coding_cookie(tmp_path, mode):
    fixture_case(tmp_path, mode, "latin1_no_cookie.py", "error",
                 r"^not valid utf-8 at byte 27 \(add a PEP 263 coding cookie.*\); file left unchanged$")


@pytest.mark.parametrize("mode", MODES)
def test_non_utf8_bytes_under_a_utf8_cookie(tmp_path, mode):
    fixture_case(tmp_path, mode, "utf8_cookie_latin1_bytes.py", "error",
                 r"^not valid utf-8 at byte \d+ \(the file's coding cookie says utf-8\); "
                 r"file left unchanged$")


@pytest.mark.parametrize("mode", MODES)
def test_non_utf8_with_coding_cookie_is_migrated_in_its_encoding(tmp_path, mode):
    run = processed_case(tmp_path, mode, "latin1_cookie_tf1.py")
    assert b"r\xe9sum\xe9" in run.result_of("latin1_cookie_tf1.py").read_bytes()


@pytest.mark.parametrize("mode", MODES)
def test_bom_is_kept(tmp_path, mode):
    run = processed_case(tmp_path, mode, "bom_tf1.py")
    assert run.result_of("bom_tf1.py").read_bytes().startswith(b"\xef\xbb\xbfimport")


@pytest.mark.parametrize("mode", MODES)
def test_crlf_is_kept(tmp_path, mode):
    run = processed_case(tmp_path, mode, "crlf_tf1.py")
    data = run.result_of("crlf_tf1.py").read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") == 4


@pytest.mark.parametrize("mode", MODES)
def test_crlf_with_bom_is_kept(tmp_path, mode):
    processed_case(tmp_path, mode, "crlf_bom_tf1.py")


@pytest.mark.parametrize("mode", MODES)
def test_cr_only_line_endings_are_kept(tmp_path, mode):
    processed_case(tmp_path, mode, "cr_only_tf1.py")


@pytest.mark.parametrize("mode", MODES)
def test_tabs_are_kept(tmp_path, mode):
    run = processed_case(tmp_path, mode, "tabs_tf1.py")
    assert b"\t\treturn tf.compat.v1" in run.result_of("tabs_tf1.py").read_bytes()


# -- size and non-source files --------------------------------------------------------------
def _five_mb_module(root: Path) -> None:
    """A generated 5 MB module (a weight table) with TF imports but no rewrite site."""
    rows, size, i = ["import tensorflow as tf\n\n", "WEIGHTS = [\n"], 0, 0
    while size < 5 * 1024 * 1024:
        row = "    " + ", ".join(f"{(i * 7919 + k) % 100003 / 100003:.6f}" for k in range(8)) + ",\n"
        rows.append(row)
        size += len(row)
        i += 1
    rows.append("]\nkernel = tf.constant(WEIGHTS)\n")
    (root / "generated.py").write_text("".join(rows))


@pytest.mark.parametrize("mode", MODES)
def test_five_megabyte_generated_file(tmp_path, mode):
    root = make_tree(tmp_path, _five_mb_module)
    before = snapshot(root)
    assert len(before["generated.py"][1]) >= 5 * 1024 * 1024
    run = migrate(tmp_path, root, mode)
    assert run.rc == 0, run.stderr
    assert run.lines_about("generated.py") == []
    assert_untouched(run, before, "generated.py")
    assert_good_migrated(run)


@pytest.mark.slow
def test_five_megabyte_file_with_a_rewrite_site(tmp_path):
    """The same size, rewritten: slow (libcst on 5 MB: 70-190 s on 2 cores), so --run-slow only."""
    def build(root):
        _five_mb_module(root)
        with open(root / "generated.py", "ab") as handle:
            handle.write(b"h = tf.layers.batch_normalization(kernel)\n")
    root = make_tree(tmp_path, build)
    original = (root / "generated.py").read_bytes()
    run = migrate(tmp_path, root, "in_place", timeout=600)
    assert run.rc == 0, run.stderr
    assert (root / "generated.py").read_bytes() == original.replace(OLD, NEW)


@pytest.mark.parametrize("mode", MODES)
def test_binary_file_named_py(tmp_path, mode):
    fixture_case(tmp_path, mode, "binary.py", "error", r"^binary file \(contains NUL bytes\)")


def _drop_read_override():
    """A command prefix that makes root obey file modes, or a skip reason."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and `setpriv` (util-linux) is missing: chmod 000 cannot "
                    "make a file unreadable to root, and no other way to drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")


@pytest.mark.parametrize("mode", [
    "in_place",
    "out",
])
def test_unreadable_file(tmp_path, mode):
    prefix = _drop_read_override()

    def build(root):
        (root / "secret.py").write_bytes(GOOD)
        os.chmod(root / "secret.py", 0)
    root = make_tree(tmp_path, build)
    before = snapshot(root)
    run = migrate(tmp_path, root, mode, prefix=prefix)
    assert_one_line(run, "secret.py", "error", r"^cannot read: Permission denied")
    assert_untouched(run, before, "secret.py", mirrored=False)
    assert_good_migrated(run)
    assert run.rc == 2


@pytest.mark.parametrize("mode", MODES)
def test_unreadable_directory(tmp_path, mode):
    prefix = _drop_read_override()

    def build(root):
        (root / "closed").mkdir()
        (root / "closed" / "inner.py").write_bytes(GOOD)
        os.chmod(root / "closed", 0)
    root = make_tree(tmp_path, build)
    try:
        run = migrate(tmp_path, root, mode, prefix=prefix)
    finally:
        os.chmod(root / "closed", 0o755)
    assert_one_line(run, "closed", "error", r"^cannot read directory: Permission denied")
    assert (root / "closed" / "inner.py").read_bytes() == GOOD
    assert_good_migrated(run)
    assert run.rc == 2


@pytest.mark.parametrize("mode", MODES)
def test_named_pipe_does_not_hang_the_run(tmp_path, mode):
    """Opening a FIFO for reading blocks until a writer comes: it must never be opened."""
    root = make_tree(tmp_path, lambda r: os.mkfifo(r / "pipe.py"))
    before = snapshot(root)
    run = migrate(tmp_path, root, mode, timeout=60)
    assert_one_line(run, "pipe.py", "error", r"^not a regular file \(a named pipe\), skipped$")
    assert_untouched(run, before, "pipe.py")
    assert_good_migrated(run)
    assert run.rc == 2


@pytest.mark.parametrize("mode", MODES)
def test_socket_named_py(tmp_path, mode):
    sock = socket.socket(socket.AF_UNIX)
    try:
        root = make_tree(tmp_path, lambda r: sock.bind(str(r / "sock.py")))
    except OSError as exc:  # e.g. path too long for AF_UNIX
        pytest.skip(f"cannot create a unix socket here: {exc}")
    try:
        run = migrate(tmp_path, root, mode, timeout=60)
    finally:
        sock.close()
    assert_one_line(run, "sock.py", "error", r"^not a regular file \(a socket\), skipped$")
    assert_good_migrated(run)
    assert run.rc == 2


# -- links and directories ------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_symlink_to_a_file_outside_the_tree(tmp_path, mode):
    outside = tmp_path / "elsewhere.py"
    outside.write_bytes(GOOD)
    root = make_tree(tmp_path, lambda r: os.symlink(outside, r / "outside.py"))
    before = snapshot(root)
    run = migrate(tmp_path, root, mode)
    assert_one_line(run, "outside.py", "warning", r"^symlink to a file outside the tree, not followed$")
    assert_untouched(run, before, "outside.py")
    assert outside.read_bytes() == GOOD  # never written through
    if run.out is not None:
        assert os.readlink(run.out / "outside.py") == str(outside)  # a link stays a link
    assert_good_migrated(run)
    assert run.rc == 0, run.stderr  # a warning does not change the exit code


@pytest.mark.parametrize("mode", MODES)
def test_symlink_loop(tmp_path, mode):
    def build(root):
        os.symlink("loop_b.py", root / "loop_a.py")
        os.symlink("loop_a.py", root / "loop_b.py")
    root = make_tree(tmp_path, build)
    before = snapshot(root)
    run = migrate(tmp_path, root, mode)
    for name in ("loop_a.py", "loop_b.py"):
        assert_one_line(run, name, "error", r"^symlink loop, not followed$")
        assert_untouched(run, before, name)
    assert_good_migrated(run)
    assert run.rc == 2


@pytest.mark.parametrize("mode", MODES)
def test_directory_symlink_loop(tmp_path, mode):
    """A link to an ancestor directory is not walked (no infinite recursion)."""
    root = make_tree(tmp_path, lambda r: os.symlink("..", r / "up"))
    run = migrate(tmp_path, root, mode, timeout=60)
    assert run.rc == 0, run.stderr
    assert_good_migrated(run)
    if run.out is not None:
        assert os.readlink(run.out / "up") == ".."


@pytest.mark.parametrize("mode", MODES)
def test_directory_named_x_py(tmp_path, mode):
    """A directory whose name ends in .py is a directory: walked, never opened as a file."""
    def build(root):
        (root / "x.py").mkdir()
        (root / "x.py" / "inner.py").write_bytes(GOOD)
    root = make_tree(tmp_path, build)
    run = migrate(tmp_path, root, mode)
    assert run.rc == 0, run.stderr
    assert "x.py: error" not in run.stderr
    assert run.result_of("x.py/inner.py").read_bytes() == GOOD.replace(OLD, NEW)
    assert_good_migrated(run)


@pytest.mark.parametrize("mode", MODES)
def test_directory_named_x_py_given_explicitly(tmp_path, mode):
    root = make_tree(tmp_path, lambda r: (r / "x.py").mkdir())
    (root / "x.py" / "inner.py").write_bytes(GOOD)
    out = tmp_path / "out" if mode == "out" else None
    proc = run_cli("apply", root / "x.py", root / "good.py", *RULE_ARGS, *(["--out", out] if out else []))
    assert proc.returncode == 0, proc.stderr
    where = out if out else root
    assert (where / "x.py" / "inner.py").read_bytes() == GOOD.replace(OLD, NEW)
    assert (where / "good.py").read_bytes() == GOOD.replace(OLD, NEW)


def test_out_tree_write_failure_is_counted_as_an_error(tmp_path):
    root = make_tree(tmp_path, lambda r: None)
    out = tmp_path / "out"
    (out / "good.py").mkdir(parents=True)  # the destination is in the way
    proc = run_cli("apply", root, "--out", out, *RULE_ARGS)
    assert f"{root / 'good.py'}: error: cannot write to the output tree".encode() in proc.stderr
    assert (root / "good.py").read_bytes() == GOOD
    assert b"1 error" in proc.stdout
    assert proc.returncode == 2


def test_several_paths_with_the_same_name_do_not_overwrite_each_other_in_out(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "m.py").write_bytes(GOOD)
    second = GOOD.replace(b"\n\n\ndef", b"\n# second\n\ndef")
    (tmp_path / "b" / "m.py").write_bytes(second)
    out = tmp_path / "out"
    proc = run_cli("apply", tmp_path / "a" / "m.py", tmp_path / "b" / "m.py", "--out", out, *RULE_ARGS)
    lines = [l for l in proc.stderr.decode().splitlines() if l.startswith(str(tmp_path / "b" / "m.py"))]
    assert len(lines) == 1 and ": error: its --out destination 'm.py' is already taken by" in lines[0]
    assert (out / "m.py").read_bytes() == GOOD.replace(OLD, NEW)  # the first one, complete
    assert (tmp_path / "b" / "m.py").read_bytes() == second
    assert proc.returncode == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can create files owned by someone else")
def test_in_place_rewrite_keeps_owner_group_and_mode(tmp_path):
    root = make_tree(tmp_path, lambda r: None)
    os.chown(root / "good.py", 65534, 65534)
    os.chmod(root / "good.py", 0o640)
    proc = run_cli("apply", root, *RULE_ARGS)
    assert proc.returncode == 0, proc.stderr
    st = (root / "good.py").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    assert (root / "good.py").read_bytes() == GOOD.replace(OLD, NEW)


# -- newer syntax: processed when this Python parses it, a clean error otherwise ------------
@pytest.mark.parametrize("mode", MODES)
def test_walrus(tmp_path, mode):
    processed_case(tmp_path, mode, "walrus_tf1.py")


@pytest.mark.parametrize("mode", MODES)
def test_match_statement(tmp_path, mode):
    processed_case(tmp_path, mode, "match_tf1.py")


@pytest.mark.parametrize("mode", MODES)
def test_311_fstring_with_nested_format_spec(tmp_path, mode):
    processed_case(tmp_path, mode, "fstring311_tf1.py")


@pytest.mark.parametrize("fixture, what", [
    ("pep695_type_tf1.py", r"PEP 695 `type` statement"),
    ("pep695_generic_tf1.py", r"PEP 695 generic function"),
    ("fstring312_tf1.py", r"f-string reusing its own quotes \(PEP 701\)"),
])
@pytest.mark.parametrize("mode", MODES)
def test_312_syntax(tmp_path, mode, fixture, what):
    if PY312:
        # libcst may lag behind the interpreter: processed, or a clean error, never a crash.
        root = make_tree(tmp_path, lambda r: shutil.copy2(BAD / fixture, r / fixture))
        run = migrate(tmp_path, root, mode)
        assert "internal error" not in run.stderr
        assert_good_migrated(run)
        return
    fixture_case(tmp_path, mode, fixture, "error",
                 rf"^syntax error at line \d+, column \d+: .*\({what} needs Python 3\.12\+, "
                 rf"tf-migrate is running on Python 3\.\d+\); file left unchanged$")


# -- all of it at once, with several workers ------------------------------------------------
def test_everything_at_once_with_workers(tmp_path):
    """The whole matrix in one tree, `-j 2`: one line per bad file, every good file migrated."""
    root = tmp_path / "tree"
    shutil.copytree(BAD, root)
    for i in range(6):
        (root / f"good{i}.py").write_bytes(GOOD)
    os.symlink("loop_b.py", root / "loop_a.py")
    os.symlink("loop_a.py", root / "loop_b.py")
    os.mkfifo(root / "pipe.py")
    before = snapshot(root)
    proc = run_cli("apply", root, "--rules-module", TEST_RULES, "--select", "TFMT01", "-j", "2")
    stderr = proc.stderr.decode()
    assert proc.returncode == 2
    assert "internal error" not in stderr
    after = snapshot(root)
    failed = {Path(line.split(": ", 1)[0]).name for line in stderr.splitlines()}
    expected_errors = {"binary.py", "latin1_no_cookie.py", "utf8_cookie_latin1_bytes.py",
                       "python2_except.py", "python2_print.py", "syntax_error.py",
                       "loop_a.py", "loop_b.py", "pipe.py"}
    if not PY312:
        expected_errors |= {"pep695_type_tf1.py", "pep695_generic_tf1.py", "fstring312_tf1.py"}
    assert failed == expected_errors
    for rel, state in before.items():
        if rel in expected_errors or rel == "empty.py":
            assert after[rel] == state, rel
        elif rel.startswith("good") or rel.endswith("_tf1.py") and rel != "cr_only_tf1.py":
            assert after[rel][1] == state[1].replace(OLD, NEW), rel
