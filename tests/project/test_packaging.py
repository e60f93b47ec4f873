"""The package's metadata builds without a warning from setuptools."""

from __future__ import annotations

import warnings

import pytest
from support.paths import ROOT


def test_the_metadata_builds_without_a_deprecation_warning():
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # `license = {text = ...}` warns: gone in 2027-02
        dist = pyprojecttoml.apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"
