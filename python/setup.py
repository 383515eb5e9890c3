"""Builds the C ABI (the shmring-c crate) with cargo and ships its shared
library inside the package, so that `pip install ./python` is the one step.
It builds from the repository (an in-tree build, pip's default): the
package is not meant to be built from an sdist alone."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent.parent


class BuildWithCargo(build_py):
    def run(self):
        subprocess.run(
            ["cargo", "build", "--release", "-p", "shmring-c", "--lib"],
            cwd=ROOT,
            check=True,
        )
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        if not target.is_absolute():
            target = ROOT / target
        shutil.copy2(target / "release" / "libshmring_c.so", Path(__file__).parent / "shmring")
        super().run()


class WithNativeLibrary(Distribution):
    """The package ships a native library: its wheel is tagged for this
    platform, not as pure Python."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithCargo}, distclass=WithNativeLibrary)
