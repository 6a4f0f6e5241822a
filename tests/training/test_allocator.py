"""retain_freed_memory: large allocations come from the reusable heap instead of fresh mmaps;
release_freed_memory hands what was kept back to the system."""

import subprocess
import sys

import pytest

from pvm_mbrl.training.allocator import _glibc

# Prints the bytes glibc holds in mmapped blocks while a 64 MB array is alive, in a fresh process.
PROBE = """
import ctypes, sys
import numpy as np
from pvm_mbrl.training.allocator import retain_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "retain":
    assert retain_freed_memory()
block = np.ones(64 * 2**20, np.uint8)
print(libc.mallinfo2().hblkhd)
"""


def mmapped_bytes_with_live_block(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")
def test_large_blocks_leave_mmap_once_retained():
    assert mmapped_bytes_with_live_block("default") >= 64 * 2**20
    assert mmapped_bytes_with_live_block("retain") < 2**20


RELEASE_PROBE = """
import numpy as np
from pvm_mbrl.training.allocator import release_freed_memory, retain_freed_memory
def rss():
    return int([line for line in open("/proc/self/status") if line.startswith("VmRSS")][0].split()[1]) * 1024
assert retain_freed_memory()
blocks = [np.ones(2**20, np.uint8) for _ in range(256)]  # 256 MB in heap blocks, touched
del blocks
kept = rss()
assert release_freed_memory()
print(kept, rss())
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc_trim only")
def test_release_hands_retained_memory_back():
    out = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, check=True)
    kept, released = map(int, out.stdout.split())
    assert kept - released > 200 * 2**20  # the freed 256 MB stayed in the process until released
