"""Bad input anywhere is refused with a ConfigError naming it, never a Python traceback."""

from __future__ import annotations

import math
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.paths import COUNTER

from populace.cli import main, read_config_file
from populace.config import BOUNDS, RunConfig
from populace.errors import ConfigError

FIXTURE = [HealthCheck.function_scoped_fixture]  # each example writes its own file
FIELDS = ["population", "steps", "workers", "seed", "exploit", "explore", "ready_steps",
          "ready_seconds", "mode", "score", "executor", "keep_checkpoints", "lease_seconds",
          "burn_in", "synch", "retries", "replace_failed", "populaton", ""]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
    st.text(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5))
def test_any_settings_are_accepted_or_refused_with_a_config_error(data):
    try:
        RunConfig.from_dict(data)
    except ConfigError as e:
        assert str(e)  # names what is wrong


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURE)
@given(st.binary(max_size=200), st.sampled_from([".yaml", ".toml", ".yml", ".json"]))
def test_any_config_file_bytes_are_read_or_refused_clearly(tmp_path, content, suffix):
    path = tmp_path / f"c{suffix}"
    path.write_bytes(content)
    try:
        data = read_config_file(str(path))
    except ConfigError as e:
        assert str(path) in str(e) or suffix in str(e)
    else:
        assert isinstance(data, dict)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE)
@given(st.sampled_from(["--population", "--workers", "--steps", "--ready-steps", "--seed",
                        "--fraction", "--ready-seconds", "--burn-in", "--keep-checkpoints"]),
       st.one_of(st.integers(-10**20, -1), st.just(""), st.just("1e400"), st.just("nan"),
                 st.text(alphabet="abc%é\x00", min_size=1, max_size=5)))
def test_any_bad_flag_exits_2_and_writes_nothing(tmp_path_factory, flag, value):
    folder = tmp_path_factory.mktemp("fuzz")
    try:
        code = main(["run", str(COUNTER), "--store", str(folder / "x.db"), "--quiet",
                     flag, str(value)])
    except SystemExit as e:  # argparse refuses a value of the wrong type itself
        code = e.code
    assert code == 2
    assert not (folder / "x.db").exists()


def test_a_lease_too_short_to_renew_is_refused():
    with pytest.raises(ConfigError, match="lease_seconds must be >= 1, got 0.5"):
        RunConfig(lease_seconds=0.5)


FLOATS = {"ready_seconds", "lease_seconds", "cpus_per_worker", "gpus_per_worker"}
FLAGS = {"population": "--population", "workers": "--workers", "steps": "--steps",
         "ready_steps": "--ready-steps", "seed": "--seed", "ready_seconds": "--ready-seconds",
         "burn_in": "--burn-in", "keep_checkpoints": "--keep-checkpoints",
         "cpus_per_worker": "--cpus-per-worker", "gpus_per_worker": "--gpus-per-worker"}


def huge(field: str) -> st.SearchStrategy:
    """Values past `field`'s bound: a typo's extra digits, a pasted number, infinity."""
    above = int(BOUNDS[field]) + 1
    if field in FLOATS:
        return st.one_of(st.floats(float(above), 1e308), st.just(float("inf")))
    return st.one_of(st.integers(above, above * 10**12), st.just(10**4000))


def _refused_at_once(argv: list[str]) -> int:
    """main(argv)'s exit code, asserting it took under a second and under 20 MB."""
    tracemalloc.start()
    began = time.monotonic()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refuses a value of the wrong type itself
        code = e.code
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - began < 1.0
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB for a refused setting"
    return code


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(st.data())
def test_a_huge_flag_is_refused_at_once_without_growing_memory(tmp_path_factory, data):
    # `populace run SCRIPT --population 99999999999999999999999` used to start drawing hparams
    # for every member and pass 9 GB in two minutes
    field = data.draw(st.sampled_from(sorted(FLAGS)))
    value = data.draw(huge(field))
    folder = tmp_path_factory.mktemp("huge")
    code = _refused_at_once(["run", str(COUNTER), "--store", str(folder / "x.db"), "--quiet",
                             FLAGS[field], str(value)])
    assert code == 2
    assert not (folder / "x.db").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(st.data(), st.sampled_from([".yaml", ".toml"]))
def test_a_huge_setting_in_a_config_file_is_refused_at_once(tmp_path_factory, data, suffix):
    field = data.draw(st.sampled_from(sorted(BOUNDS)))
    value = data.draw(huge(field))
    folder = tmp_path_factory.mktemp("huge")
    if isinstance(value, float) and math.isinf(value):
        text = ".inf" if suffix == ".yaml" else "inf"
    else:
        text = repr(value)
    (folder / f"c{suffix}").write_text(f"{field}: {text}\n" if suffix == ".yaml"
                                       else f"{field} = {text}\n")
    code = _refused_at_once(["run", str(COUNTER), "--store", str(folder / "x.db"), "--quiet",
                             "--config", str(folder / f"c{suffix}")])
    assert code == 2
    assert not (folder / "x.db").exists()


@pytest.mark.parametrize("field, value, message", [
    ("population", 10**23 - 1, "population must be <= 10,000, got 99999"),
    ("population", 10**4000, "(4001 digits)"),
    ("lease_seconds", 1e300, "lease_seconds must be in (0, 86,400], got 1e+300"),
    ("workers", 5000, "workers must be <= 1,024, got 5000"),
])
def test_a_bound_is_named_with_the_field_the_value_and_the_limit(field, value, message):
    with pytest.raises(ConfigError) as e:
        RunConfig(**{field: value})
    assert message in str(e.value)
