"""Make this Python behave, for bitsandbytes and torch, like a CPU without AVX-512 BF16 (tests/test_cpu_paths.py).

Put this folder first on PYTHONPATH: Python imports `sitecustomize` at start-up, in every process, notebook kernels
included. bitsandbytes asks its native library once, at import, whether the CPU has AVX-512 BF16 and then takes
other code paths (a fused 4-bit inference kernel; Linear4bit repacks its weight in eval mode). Here its answer is
replaced by False as soon as bitsandbytes.functional is loaded, before anything reads it. Torch's kernels are
capped at AVX2 by the caller's environment (ATEN_CPU_CAPABILITY=avx2). What cannot be emulated: the native
dequantize kernel, which bitsandbytes' C library chooses from the CPU itself.
"""
import importlib.abc
import importlib.util
import sys

TARGET = "bitsandbytes.functional"


def lacks_avx512_bf16():
    return False


class PatchAfterLoad(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of bitsandbytes.functional so that, once the module has run,
    its has_avx512bf16 answers False."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)   # let the normal finders find the module, then wrap their loader
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            module.has_avx512bf16 = lacks_avx512_bf16

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, PatchAfterLoad())
