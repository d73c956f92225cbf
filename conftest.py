"""pytest configuration for the whole repository.

* Notebooks executed by ``pytest --nbmake`` run in their small-settings mode (tiny configs that finish on a CPU);
  the kernel inherits this environment variable.
* A persistent XLA compilation cache shared by the test process and every CLI subprocess and notebook kernel
  it starts: many tests compile the same tiny programs, and a cached executable is the same executable, so
  results do not change (only compilation time does).
* One CPU device in every CLI subprocess, whatever the host's core count (the command line otherwise gives XLA
  one CPU device per core, ``purejax_ad/cpu_cores.py``), so the tests' runs, plans and device counts are the
  same on every host; ``tests/test_cpu_cores.py`` and the multi-device tests set their own ``XLA_FLAGS``.
* The CLI's compile-time history in a temporary file, not the user's ``~/.cache/purejax_ad/``.
"""

import os
import tempfile

os.environ.setdefault("PUREJAX_AD_SMALL", "1")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "purejax_ad_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("PUREJAX_AD_COMPILE_TIMES", os.path.join(tempfile.gettempdir(), "purejax_ad_test_compile_times.json"))
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=1".strip()
