"""Build the fidius platform wheel (configuration in pyproject.toml).

The package bundles libfidius.so next to fidius/__init__.py, which loads it
from there first. Put the library in place before building (`make
python-wheel` does: it stages these sources with target/debug/libfidius.so):

    cp libfidius.so fidius/ && FIDIUS_VERSION=0.1.0 pip wheel --no-deps .

The wheel is tagged py3-none-<platform>: any Python 3 (ctypes, no extension
module), but only the platform the bundled library was built for.
"""
import os
import re

from setuptools import setup
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))


def version():
    v = os.environ.get("FIDIUS_VERSION")
    if v:
        return v
    # In the source tree: the library's version, from Cargo.toml.
    cargo = os.path.join(HERE, "..", "..", "Cargo.toml")
    if os.path.exists(cargo):
        with open(cargo) as f:
            m = re.search(r'^version = "([^"]+)"', f.read(), re.M)
            if m:
                return m.group(1)
    raise SystemExit("set FIDIUS_VERSION to libfidius' version")


class BinaryDistribution(Distribution):
    """Platform-specific: the files go to platlib and the wheel is not pure."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A wheel for this platform, but for any Python 3: it carries libfidius.so,
    not an extension module."""

    def get_tag(self):
        return "py3", "none", super().get_tag()[2]

    def run(self):
        if not os.path.exists(os.path.join(HERE, "fidius", "libfidius.so")):
            raise SystemExit("fidius/libfidius.so is missing: copy the library there first "
                             "(make python-wheel does)")
        super().run()


setup(version=version(), distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
