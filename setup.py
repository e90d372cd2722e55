"""Packages for setuptools (everything else is in pyproject.toml): sim, loadtest and reports,
and the shipped scenarios as the package data of `sim.examples` (`surge examples`, `surge init`)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sim*", "loadtest*", "reports*"]), "sim.examples"],
    package_dir={"sim.examples": "scenarios"},
    package_data={"sim.examples": ["*.yaml", "*/*.yaml", "*/*.csv", "*/*.md", "*/*.jsonl"]},
)
