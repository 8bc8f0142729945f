import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# Read, not imported: the build runs before the package's dependencies are installed.
__version__ = re.search(r'__version__ = "([^"]+)"', (HERE / "containerfs" / "__init__.py").read_text()).group(1)

setup(
    name="containerfs",
    version=__version__,
    description="Per-container /proc and /sys views (meminfo, cpuinfo, stat, loadavg, "
    "uptime, diskstats, swaps, cpu/online) served by a FUSE daemon from cgroup v1/v2 counters",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["containerfs", "containerfs.*"]),
    # No psutil: it reads the real /proc, and the daemon reads the roots it is given.
    install_requires=["mfusepy>=3.0"],
    extras_require={"test": ["pytest>=7", "ruff", "mypy", "pyyaml"], "bench": ["psutil>=5.8"]},
    entry_points={
        "console_scripts": [
            "containerfs=containerfs.cli:main",
            "containerfs-runtime=containerfs.runtime.main:main",
        ]
    },
)
