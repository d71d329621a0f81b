"""pip install ./bindings/python --no-build-isolation: the lariat package
and its cffi module, built against the lariat that pkg-config finds (set
PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a prefix of your own). Needs
Debian's python3-cffi, python3-dev, python3-setuptools and python3-wheel
(offline, hence --no-build-isolation)."""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_lariat  # noqa: E402

setup(
    name="lariat",
    version=build_lariat.package_version(),
    description="WebSocket server and client with Cowboy's handler model "
                "and an asyncio API shaped like websockets'",
    packages=["lariat"],
    python_requires=">=3.8",
    install_requires=["cffi>=1.0"],
    cffi_modules=["build_lariat.py:pkg_config_ffi"],
    zip_safe=False,
)
