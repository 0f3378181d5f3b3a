"""The process-wide glibc malloc settings (qwenimage/allocator.py): applied by `import qwenimage` on glibc Linux,
skipped when turned off. Each check runs in a fresh interpreter, since the settings are per process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

glibc_linux = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                 reason="mallopt is glibc's")

PROBE = "import qwenimage, qwenimage.allocator as a; print(a._applied)"


def applied(env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()[-1]


@glibc_linux
def test_import_applies_the_malloc_thresholds():
    assert applied({"QWENIMAGE_MALLOC_TUNING": "1"}) == "True"


def test_the_environment_variable_keeps_glibcs_defaults():
    assert applied({"QWENIMAGE_MALLOC_TUNING": "0"}) == "False"
