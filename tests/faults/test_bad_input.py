"""Bad input anywhere is refused with a ConfigError naming it, never a Python traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from populace.cli import main, read_config_file
from populace.config import RunConfig
from populace.space import ConfigError

FIXTURE = [HealthCheck.function_scoped_fixture]  # each example writes its own file
COUNTER = Path(__file__).resolve().parents[1] / "scripts" / "counter.py"
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
    import pytest

    with pytest.raises(ConfigError, match="lease_seconds must be >= 1, got 0.5"):
        RunConfig(lease_seconds=0.5)
