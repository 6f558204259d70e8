"""The course on an x86 CPU without AVX-512 BF16, emulated on any x86 CPU.

bitsandbytes takes other CPU code paths where the CPU has AVX-512 BF16 (see peftcourse.runtime.bnb_cpu_kernels),
and torch's kernels differ between AVX-512 and AVX2. CI runs on one machine, so the tests that touch bitsandbytes
and the two quantization notebooks are run again here in a child process that behaves like the other kind of CPU:
torch capped at AVX2 (the experiments' PORTABLE_KERNELS) and bitsandbytes told the CPU lacks AVX-512 BF16
(tests/cpu_without_avx512_bf16/sitecustomize.py). On a CPU that lacks them already the emulation changes nothing.
"""
import json
import os
import platform
import subprocess
import sys

import pytest

from peftcourse.experiments import ROOT
from peftcourse.experiments.cli import PORTABLE_KERNELS

EMULATION = os.path.join(ROOT, "tests", "cpu_without_avx512_bf16")
# every test module that calls bitsandbytes, and the notebooks built on it (00 prints the kernels it found)
AGAIN = ["tests/test_quant.py", "tests/test_qlora.py", "tests/test_llama.py", "tests/test_runtime.py",
         "tests/test_badinput.py", "tests/test_smollm2.py",
         "notebooks/00_start_here.ipynb", "notebooks/06_quantization_nf4.ipynb", "notebooks/07_qlora.ipynb"]

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="AVX-512 and AVX2 are x86 instruction sets")


def run_emulated(*args, timeout=1200):
    env = {**os.environ, **PORTABLE_KERNELS,
           "PYTHONPATH": os.pathsep.join(p for p in (EMULATION, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_emulated_cpu_takes_the_paths_of_a_cpu_without_avx512_bf16():
    probe = ("import json, torch, bitsandbytes as bnb\n"
             "from bitsandbytes.backends.cpu import ops\n"
             "from peftcourse.runtime import bnb_cpu_kernels\n"
             "print(json.dumps({'kernels': bnb_cpu_kernels(), 'torch': torch.backends.cpu.get_cpu_capability(),\n"
             "                  'linear4bit': bnb.nn.Linear4bit(64, 64).support_avx512bf16_for_cpu,\n"
             "                  'ops': bool(ops.has_avx512bf16())}))")
    proc = run_emulated("-c", probe, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["kernels"]["avx512_bf16"] is False and seen["linear4bit"] is False and seen["ops"] is False, seen
    assert seen["torch"] != "AVX512" and seen["kernels"]["avx512_fallback"] is False, seen
    # bitsandbytes registers its fused bf16 kernel only on an AVX-512 BF16 CPU, and says so when it cannot load it
    assert "gemm_4bit_forward" not in proc.stderr


def test_bitsandbytes_tests_and_quantization_notebooks_pass_without_avx512_bf16():
    proc = run_emulated("-m", "pytest", "-q", *AGAIN)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert " passed" in proc.stdout.splitlines()[-1], proc.stdout[-2000:]
