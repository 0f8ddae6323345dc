"""Package list for setuptools (everything else is in pyproject.toml).

The built-in themes live in ``themes/`` at the top of the repository (docs/architecture.md) and
ship in the wheel as the data package ``tui.builtin_themes``; tui/themes.py reads them from there
when installed and from ``themes/`` in a source checkout. pyproject's ``packages.find`` cannot
add a package whose folder has another name, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["backend*", "tui*"]), "tui.builtin_themes"],
    package_dir={"tui.builtin_themes": "themes"},
)
