"""Reusing freed memory: glibc keeps large freed blocks, so reallocating them faults in no new pages."""
import subprocess
import sys

import pytest

from clmr_lib.utils import memory

#: A child process allocating and freeing a 256 MiB tensor several times; prints the fewest page
#: faults of one reallocation (single-threaded, so the fill is the only thing touching pages; the
#: fewest, because where the heap places a block varies from run to run).
CHILD = """
import resource, sys, torch
torch.set_num_threads(1)
from clmr_lib.utils.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
n = 256 * 2 ** 20 // 4
torch.ones(n)
counts = []
for _ in range(6):
    before = faults()
    torch.ones(n)
    counts.append(faults() - before)
print(applied, min(counts))
"""


def faults_of(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(memory._libc() is None, reason="glibc only")
def test_freed_blocks_are_reused_instead_of_mapped_again():
    pages = 256 * 2 ** 20 // 4096
    applied, default_faults = faults_of("default")
    assert not applied and default_faults > pages // 2  # glibc maps (and the kernel zeroes) it every time
    applied, kept_faults = faults_of("keep")
    assert applied and kept_faults < default_faults // 4


def test_is_idempotent_and_reports_whether_it_applies():
    first = memory.keep_freed_memory()
    assert memory.keep_freed_memory() is first
    assert first == (memory._libc() is not None)
