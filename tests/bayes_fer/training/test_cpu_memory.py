"""Training keeps freed CPU memory for reuse instead of faulting fresh pages in every step."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from bayes_fer.training import cpu_memory

# After two warm-up blocks, allocates and frees a 64 MB tensor 20 times, then prints the page faults that took.
_CYCLES = """
import resource, sys, torch
from bayes_fer.training.cpu_memory import keep_freed_cpu_memory
kept = keep_freed_cpu_memory() if sys.argv[1] == "keep" else False
for _ in range(2):
    torch.ones(16 << 20)  # the first blocks are faulted in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(16 << 20)  # 64 MB, written in full, then freed
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's"
)


def _faults(mode: str, **env: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _CYCLES, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return out[0], int(out[1])


@glibc_only
def test_kept_memory_is_reused_without_page_faults():
    kept, kept_faults = _faults("keep")
    _, system_faults = _faults("system")
    assert kept == "True"
    # Each fresh 64 MB block faults in 16,384 pages of 4 kB; a reused one none.
    assert system_faults > 10 * 16_384, f"{system_faults} faults with the system setting"
    # Kept: the cycles reuse blocks; glibc may place one more block before it settles.
    assert kept_faults < 2 * 16_384, f"{kept_faults} faults after keep_freed_cpu_memory()"


@glibc_only
def test_environment_variable_leaves_the_allocator_alone():
    kept, faults = _faults("keep", BAYES_FER_SYSTEM_MALLOC="1")
    assert kept == "False" and faults > 10 * 16_384


def test_off_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_kept", False)
    monkeypatch.setattr(cpu_memory.platform, "system", lambda: "Darwin")
    assert cpu_memory.keep_freed_cpu_memory() is False
