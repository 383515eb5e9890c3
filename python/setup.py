"""Builds the C ABI (the shmring-c crate) with cargo and ships its shared
library inside the package, so that `pip install ./python` is the one step."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

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


setup(cmdclass={"build_py": BuildWithCargo})
