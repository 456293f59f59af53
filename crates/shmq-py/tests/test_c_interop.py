"""Interop with libshmq (crates/shmq-ffi): a C producer, a Rust consumer process and this
Python process as a consumer share one named queue; each message is delivered exactly once.

It builds libshmq and the Rust consumer with cargo and the C producer with cc (the
repository's toolchain, as .ci/run has it); a missing compiler fails the test."""

import os
import subprocess
import threading

import pytest

import shmq

# The repository: SHMQ_REPO when the tests run from a copy outside it (.ci/run does that to
# test the installed wheel), else three levels above this file.
REPO = os.environ.get("SHMQ_REPO") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..")
)
FFI = os.path.join(REPO, "crates", "shmq-ffi")
COUNT = 20000


def build():
    """libshmq.so, the Rust consumer and the C producer; returns the two programs."""
    env = dict(os.environ)
    subprocess.run(
        # `--lib` as well: building an example alone makes only the rlib of the library, and
        # the C producer links libshmq.so.
        ["cargo", "build", "-q", "-p", "shmq-ffi", "--lib", "--example", "interop_consumer"],
        cwd=REPO, check=True, env=env,
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    libdir = os.path.join(target, "debug")
    producer = os.path.join(libdir, "shmq-interop-producer")
    subprocess.run(
        ["cc", "-std=c11", "-Wall", "-Werror", "-fsanitize=address,undefined",
         "-I", os.path.join(FFI, "include"), os.path.join(FFI, "examples", "c", "interop_producer.c"),
         "-o", producer, "-L", libdir, "-Wl,-rpath," + libdir, "-lshmq"],
        check=True,
    )
    return producer, os.path.join(libdir, "examples", "interop_consumer")


def test_c_producer_rust_and_python_consumers_share_a_queue():
    producer, rust_consumer = build()
    name = f"shmq-test-interop-{os.getpid()}"
    # Created here (slots of 32 bytes, as the producer asks), so that this process consumes
    # from the start; the producer opens it, puts COUNT messages and closes it.
    q = shmq.Queue(64, name=name, slot_size=32)
    try:
        rust = subprocess.Popen([rust_consumer, name], stdout=subprocess.PIPE, text=True)
        rust_out = []
        reader = threading.Thread(target=lambda: rust_out.append(rust.stdout.read()))
        reader.start()
        c = subprocess.Popen([producer, name, str(COUNT)], stdout=subprocess.PIPE, text=True)
        mine = []
        while True:
            try:
                mine.append(q.get_bytes(timeout=60).decode())
            except shmq.ShutDown:
                break
        c_out, _ = c.communicate(timeout=60)
        assert c.returncode == 0 and f"produced {COUNT}" in c_out
        assert rust.wait(timeout=60) == 0
        reader.join(timeout=60)
        theirs = rust_out[0].splitlines()
    finally:
        shmq.unlink(name)
    assert mine and theirs, (len(mine), len(theirs))
    both = mine + theirs
    assert len(both) == len(set(both)), "a message was delivered twice"
    assert set(both) == {f"c-{i}" for i in range(COUNT)}
