"""Profiles from pycrew.toml, [tool.pycrew], the user file and PYCREW_* variables."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.config import (
    ConfigError,
    config_files,
    controller_arguments,
    env_prefix,
    load_profile,
    parse_env_value,
    profile_names,
    profiles,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user file, no PYCREW_* overrides from the caller's environment; a project directory."""
    monkeypatch.delenv("PYCREW_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in list(os.environ):
        if var.startswith(("PYCREW_GPU", "PYCREW_DEV", "PYCREW_LOCAL_", "PYCREW_CI")):
            monkeypatch.delenv(var)
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    assert config_files(project) == [], f"a pycrew configuration above {tmp_path} would disturb these tests"
    return project


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


GPU = """
[profiles.gpu]
launcher = "slurm"
workers = 8
seconds_idle = 60
partition = "gpu"

[profiles.dev]
launcher = "local"
workers = 2

[defaults]
seconds_launch = 120
"""


def test_profile_is_found_in_pycrew_toml_from_a_subdirectory(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", GPU)
    p = load_profile("gpu", isolated / "src" / "pkg")
    assert p is not None
    assert p.launcher == "slurm"
    assert p.options == {"workers": 8, "seconds_idle": 60.0, "partition": "gpu", "seconds_launch": 120.0}
    assert p.sources["workers"] == f"{path}:profiles.gpu"
    assert p.sources["seconds_launch"] == f"{path}:defaults"
    assert p.launcher_options() == {"partition": "gpu"}


def test_tool_pycrew_in_pyproject_is_read_with_its_own_source_label(isolated: Path) -> None:
    path = write(isolated / "pyproject.toml", '[project]\nname = "x"\n[tool.pycrew.profiles.dev]\nlauncher = "local"\nworkers = 3\n')
    p = load_profile("dev", isolated / "src")
    assert p is not None and p.options == {"workers": 3}
    assert p.sources["workers"] == f"{path}:tool.pycrew.profiles.dev"


def test_pyproject_without_tool_pycrew_is_skipped_and_the_search_goes_upwards(isolated: Path) -> None:
    write(isolated / "src" / "pyproject.toml", '[project]\nname = "pycrew-user"\n')
    write(isolated / "pycrew.toml", GPU)
    assert [f.path for f in config_files(isolated / "src" / "pkg")] == [isolated / "pycrew.toml"]


def test_pycrew_toml_wins_over_pyproject_in_the_same_directory(isolated: Path) -> None:
    write(isolated / "pyproject.toml", "[tool.pycrew.profiles.dev]\nlauncher = 'local'\nworkers = 5\n")
    write(isolated / "pycrew.toml", GPU)
    p = load_profile("dev", isolated)
    assert p is not None and p.options["workers"] == 2


def test_defaults_apply_to_every_profile_and_a_profile_overrides_them(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU + '\n[profiles.slow]\nlauncher = "local"\nseconds_launch = 300\n')
    dev, slow = load_profile("dev", isolated), load_profile("slow", isolated)
    assert dev is not None and dev.options["seconds_launch"] == 120.0
    assert slow is not None and slow.options["seconds_launch"] == 300.0


def test_user_file_is_read_from_xdg_config_home_and_the_project_overrides_it_per_key(isolated: Path, tmp_path: Path) -> None:
    user = write(tmp_path / "xdg" / "pycrew" / "config.toml",
                 '[profiles.dev]\nlauncher = "local"\nworkers = 9\nseconds_idle = 5\n[profiles.mine]\nlauncher = "local"\n')
    project = write(isolated / "pycrew.toml", GPU)
    p = load_profile("dev", isolated)
    assert p is not None
    assert p.options["workers"] == 2 and p.sources["workers"] == f"{project}:profiles.dev", "the project wins per key"
    assert p.options["seconds_idle"] == 5.0 and p.sources["seconds_idle"] == f"{user}:profiles.dev", "other user keys stay"
    assert p.options["seconds_launch"] == 120.0, "the project's defaults apply to the user's profile too"
    assert profile_names(isolated) == ["dev", "gpu", "mine"]
    assert [f.scope for f in config_files(isolated)] == ["user", "project"]


def test_pycrew_config_names_the_user_file(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "elsewhere.toml", '[profiles.dev]\nlauncher = "local"\nworkers = 4\n')
    monkeypatch.setenv("PYCREW_CONFIG", str(path))
    p = load_profile("dev", isolated)
    assert p is not None and p.sources["workers"] == f"{path}:profiles.dev"


def test_pycrew_config_naming_a_missing_file_is_an_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_CONFIG", "/nonexistent/pycrew.toml")
    with pytest.raises(ConfigError, match=r"PYCREW_CONFIG='/nonexistent/pycrew.toml' names no file"):
        load_profile("dev", isolated)


def test_an_empty_pycrew_config_means_no_user_file(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "xdg" / "pycrew" / "config.toml", '[profiles.dev]\nlauncher = "local"\n')
    monkeypatch.setenv("PYCREW_CONFIG", "")
    assert load_profile("dev", isolated) is None


def test_env_overrides_are_parsed_to_the_keys_type(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_DEV_WORKERS", "16")
    monkeypatch.setenv("PYCREW_DEV_SECONDS_IDLE", "inf")
    monkeypatch.setenv("PYCREW_DEV_GARBAGE_COLLECTION", "yes")
    monkeypatch.setenv("PYCREW_DEV_TASKS_MAX", "none")
    monkeypatch.setenv("PYCREW_DEV_ENV", '{"OMP_NUM_THREADS": "1"}')
    monkeypatch.setenv("PYCREW_DEV_HOST", "10.0.0.5")
    p = load_profile("dev", isolated)
    assert p is not None
    assert p.options["workers"] == 16 and p.sources["workers"] == "env PYCREW_DEV_WORKERS"
    assert p.options["seconds_idle"] == math.inf
    assert p.options["garbage_collection"] is True
    assert p.options["tasks_max"] is None
    assert p.options["env"] == {"OMP_NUM_THREADS": "1"}
    assert p.options["host"] == "10.0.0.5"


def test_env_override_can_change_the_launcher(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", '[profiles.ci]\nlauncher = "slurm"\n')
    monkeypatch.setenv("PYCREW_CI_LAUNCHER", "local")
    p = load_profile("ci", isolated)
    assert p is not None and p.launcher == "local" and p.sources["launcher"] == "env PYCREW_CI_LAUNCHER"


def test_env_override_with_a_bad_value_names_the_variable_profile_and_key(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_GPU_WORKERS", "many")
    with pytest.raises(ConfigError, match=r"^env PYCREW_GPU_WORKERS: profile 'gpu', key 'workers': .*'many'"):
        load_profile("gpu", isolated)


def test_env_override_that_fails_validation_names_the_variable(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_GPU_WORKERS", "0")
    with pytest.raises(ConfigError, match=r"^env PYCREW_GPU_WORKERS: profile 'gpu', key 'workers': .*must be >= 1, got 0"):
        load_profile("gpu", isolated)


def test_a_worker_count_past_the_limit_from_the_environment_names_the_variable(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_DEV_WORKERS", "100001")
    with pytest.raises(ConfigError, match=r"^env PYCREW_DEV_WORKERS: profile 'dev', key 'workers': .* must be at most 100,000"):
        load_profile("dev", isolated)


def test_env_override_close_to_a_key_is_a_typo_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_GPU_PARTITON", "a100")
    with pytest.raises(ConfigError, match=r"env PYCREW_GPU_PARTITON: profile 'gpu': unknown key 'partiton' \(did you mean 'partition'\?\)"):
        load_profile("gpu", isolated)


def test_env_variable_far_from_every_key_is_not_an_override(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_DEV_ZZZ", "1")
    p = load_profile("dev", isolated)
    assert p is not None and "zzz" not in p.options


def test_ignored_variables_get_one_warning_each(isolated: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """On d0119a8 they were logged at DEBUG only: PYCREW_LOCAL_WORKERS=2 without [profiles.local] left
    pycrew.controller("local") at one worker without a word."""
    from pycrew import config_env

    monkeypatch.setattr(config_env, "_warned", set())
    write(isolated / "pycrew.toml", GPU)
    monkeypatch.setenv("PYCREW_LOCAL_WORKERS", "2")
    monkeypatch.setenv("PYCREW_DEV_IDLE_SECONDS", "5")
    with caplog.at_level("WARNING", logger="pycrew.config"):
        for _ in range(2):
            assert controller_arguments("local", None, {}, cwd=isolated)[1] is None
            assert load_profile("dev", isolated) is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("ignoring PYCREW_LOCAL_WORKERS: no configuration file defines [profiles.local], and "
                                  "PYCREW_<PROFILE>_<KEY> variables override profiles defined in a file only")
    assert warnings[1].startswith("ignoring PYCREW_DEV_IDLE_SECONDS: 'idle_seconds' is no option of profile 'dev'")


def test_env_overrides_do_not_create_profiles(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_GPU_LAUNCHER", "local")
    assert load_profile("gpu", isolated) is None


def test_a_longer_profile_name_keeps_its_own_variables(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", GPU + '[profiles.gpu-big]\nlauncher = "slurm"\n')
    monkeypatch.setenv("PYCREW_GPU_BIG_WORKERS", "32")
    big, gpu = load_profile("gpu-big", isolated), load_profile("gpu", isolated)
    assert big is not None and big.options["workers"] == 32
    assert gpu is not None and gpu.options["workers"] == 8
    assert env_prefix("gpu-big") == "PYCREW_GPU_BIG_"


def test_pycrews_own_variables_are_never_overrides(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "pycrew.toml", '[profiles.state]\nlauncher = "local"\n[profiles.slurm]\nlauncher = "slurm"\n')
    monkeypatch.setenv("PYCREW_STATE_DIR", str(isolated))
    monkeypatch.setenv("PYCREW_SLURM_DIR", str(isolated))
    assert load_profile("state", isolated) is not None
    assert load_profile("slurm", isolated) is not None


def test_unknown_key_names_the_file_profile_key_and_a_close_match(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", '[profiles.gpu]\nlauncher = "slurm"\npartiton = "gpu"\n')
    with pytest.raises(ConfigError) as info:
        load_profile("gpu", isolated)
    message = str(info.value)
    assert message.startswith(f"{path}:profiles.gpu: profile 'gpu', key 'partiton': unknown key"), message
    assert "did you mean 'partition'?" in message
    # the valid keys listed are those a file may set: not backup, a controller object (a probe, on e521ec5)
    assert "valid keys: " in message and "partition" in message.split("valid keys: ")[1]
    assert "backup" not in message.split("valid keys: ")[1], message


def test_every_unknown_key_is_named_at_once(isolated: Path) -> None:
    """A typo in [defaults] hid a second one in the profile: fixing the first only revealed
    the next (a probe, on a7fc78c)."""
    write(isolated / "pycrew.toml", '[defaults]\nseconds_idel = 5\n[profiles.dev]\nlauncher = "local"\npyhton = "/x"\n')
    with pytest.raises(ConfigError) as info:
        load_profile("dev", isolated)
    message = str(info.value)
    assert "key 'seconds_idel': unknown key" in message and "did you mean 'seconds_idle'?" in message, message
    assert "and key 'pyhton' (" in message and "did you mean 'python'?" in message, message


def test_an_option_of_another_launcher_is_an_error_in_a_profile(isolated: Path) -> None:
    write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\npartition = "gpu"\n')
    with pytest.raises(ConfigError, match=r"key 'partition': unknown key: neither a controller option nor an option of the 'local' launcher"):
        load_profile("dev", isolated)


def test_a_value_of_the_wrong_type_names_the_file_profile_and_key(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\nworkers = "8"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:profiles.dev: profile 'dev', key 'workers': must be int, got '8' \(str\)"
                       r"; write the number without quotes"):
        load_profile("dev", isolated)
    write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\nseconds_idle = "inf"\n')
    with pytest.raises(ConfigError, match=r"key 'seconds_idle': must be float, got 'inf' \(str\); write the number without quotes"):
        load_profile("dev", isolated)
    write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\nworkers = "many"\n')
    with pytest.raises(ConfigError, match=r"got 'many' \(str\)$"):
        load_profile("dev", isolated)


def test_a_launcher_option_failing_validation_names_the_key(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", '[profiles.gpu]\nlauncher = "slurm"\ncpus_per_task = 0\n')
    with pytest.raises(ConfigError, match=rf"^{path}:profiles.gpu: profile 'gpu', key 'cpus_per_task': "):
        load_profile("gpu", isolated)


def test_a_defaults_key_of_another_launcher_is_skipped_for_profiles_without_it(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU.replace("[defaults]", '[defaults]\npartition = "cpu"') + '[profiles.other]\nlauncher = "slurm"\n')
    dev, other, gpu = (load_profile(n, isolated) for n in ("dev", "other", "gpu"))
    assert dev is not None and "partition" not in dev.options
    assert other is not None and other.options["partition"] == "cpu"
    assert gpu is not None and gpu.options["partition"] == "gpu"


def test_an_unknown_defaults_key_is_an_error(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", GPU.replace("[defaults]", "[defaults]\nseconds_idel = 3"))
    with pytest.raises(ConfigError, match=rf"^{path}:defaults: profile 'dev', key 'seconds_idel': .*did you mean 'seconds_idle'"):
        load_profile("dev", isolated)


def test_the_launcher_defaults_to_the_profiles_name_when_that_is_a_launcher(isolated: Path) -> None:
    write(isolated / "pycrew.toml", "[profiles.local]\nworkers = 3\n[profiles.gpu]\nworkers = 3\n")
    p = load_profile("local", isolated)
    assert p is not None and p.launcher == "local" and p.sources["launcher"] == "default"
    with pytest.raises(ConfigError, match=r"profile 'gpu': no 'launcher' key, and 'gpu' is no launcher"):
        load_profile("gpu", isolated)


def test_a_launcher_that_is_not_installed_is_a_config_error_with_the_install_hint(isolated: Path) -> None:
    write(isolated / "pycrew.toml", '[profiles.gpu]\nlauncher = "slrum"\n')
    with pytest.raises(ConfigError, match=r"key 'launcher': no launcher named 'slrum'.*pip install"):
        load_profile("gpu", isolated)


def test_a_toml_syntax_error_names_the_file(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", "[profiles.gpu\nlauncher = 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: not valid TOML: .*line 1"):
        load_profile("gpu", isolated)


def test_a_file_that_is_not_utf8_names_the_file_line_and_byte(isolated: Path) -> None:
    path = isolated / "pycrew.toml"
    path.write_bytes(b'[profiles.gpu]\nlauncher = "local"\n# caf\xe9\n')  # a Latin-1 comment
    with pytest.raises(ConfigError, match=rf"^{path}: not valid TOML: byte 0xe9 at line 3, column 6 is not UTF-8"):
        load_profile("gpu", isolated)
    with pytest.raises(ConfigError, match="not UTF-8"):
        controller_arguments("local", None, {}, cwd=isolated)  # every entry point reads the file


def test_a_file_with_a_byte_order_mark_is_read(isolated: Path) -> None:
    """Windows editors save UTF-8 with a byte order mark; on b13a981 tomllib read it as an
    "Invalid statement" at line 1, column 1."""
    (isolated / "pycrew.toml").write_bytes(b'\xef\xbb\xbf[profiles.gpu]\nlauncher = "local"\nworkers = 3\n')
    profile = load_profile("gpu", isolated)
    assert profile is not None and profile.options["workers"] == 3, profile


def test_an_unknown_section_or_a_profile_that_is_no_table_is_an_error(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", "[profile.gpu]\nworkers = 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown key profile \(did you mean 'profiles'\?\)"):
        load_profile("gpu", isolated)
    write(isolated / "pycrew.toml", "[profiles]\ngpu = 3\n")
    with pytest.raises(ConfigError, match=r"profiles.gpu: profile 'gpu' must be a table, got 3"):
        load_profile("gpu", isolated)


def test_load_profile_returns_none_for_a_name_no_file_defines(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU)
    assert load_profile("local", isolated) is None


def test_profiles_resolves_every_profile(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU)
    found = profiles(isolated)
    assert sorted(found) == ["dev", "gpu"]
    assert found["dev"].launcher == "local" and found["gpu"].launcher == "slurm"


def test_a_bad_profile_does_not_break_loading_another(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU + '[profiles.bad]\nlauncher = "local"\nworkers = -1\n')
    assert load_profile("dev", isolated) is not None
    with pytest.raises(ConfigError, match="profile 'bad', key 'workers'"):
        profiles(isolated)


def test_a_tls_table_becomes_a_tls_object(isolated: Path) -> None:
    write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\ntls = { mode = "automatic", server_name = "me" }\n')
    p = load_profile("dev", isolated)
    assert p is not None and p.options["tls"] == pycrew.TLS("automatic", server_name="me")
    write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\ntls = { mode = "custom" }\n')
    with pytest.raises(ConfigError, match=r"key 'tls': a tls table takes mode, key, certificate, ca, server_name: .*custom"):
        load_profile("dev", isolated)


def test_a_bad_tls_mode_names_the_tls_key(isolated: Path) -> None:
    path = write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\ntls = "automatc"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:profiles.dev: profile 'dev', key 'tls': tls mode must be"):
        load_profile("dev", isolated)


def test_backup_cannot_be_set_in_a_file(isolated: Path) -> None:
    write(isolated / "pycrew.toml", '[profiles.dev]\nlauncher = "local"\nbackup = "gpu"\n')
    with pytest.raises(ConfigError, match=r"key 'backup': cannot be set in a configuration: it must be a controller object"):
        load_profile("dev", isolated)


def test_a_sequential_profile_takes_only_sequential_keys(isolated: Path) -> None:
    write(isolated / "pycrew.toml", '[profiles.debug]\nlauncher = "sequential"\nseconds_timeout = 5\n')
    p = load_profile("debug", isolated)
    assert p is not None and p.launcher == "sequential" and p.options == {"seconds_timeout": 5.0}
    write(isolated / "pycrew.toml", '[profiles.debug]\nlauncher = "sequential"\nseconds_idle = 5\n')
    with pytest.raises(ConfigError, match="key 'seconds_idle': unknown key"):
        load_profile("debug", isolated)


def test_a_profile_whose_launcher_is_sequential_builds_the_sequential_controller(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On d0119a8 `pycrew config show` accepted such a profile, but pycrew.controller("dbg") gave it to Controller():
    LauncherNotFoundError, pip install "pycrew[sequential]"; and [profiles.sequential] was silently ignored."""
    monkeypatch.chdir(isolated)
    write(isolated / "pycrew.toml", GPU + '[profiles.dbg]\nlauncher = "sequential"\nseconds_timeout = 5\n'
          f'[profiles.sequential]\ninitializer = "os:chdir"\ninitargs = ["{isolated / "src"}"]\n')
    c = pycrew.controller("dbg")
    assert isinstance(c, pycrew.SequentialController) and c.name == "dbg", "[defaults] seconds_launch is no option of it"
    assert c.submit(pow, 2, 3).result() == 8
    with pytest.raises(pycrew.OptionsError, match=r"the sequential controller takes no option\(s\) \['seconds_idle'\]"):
        pycrew.controller("dbg", seconds_idle=5)
    pycrew.controller("sequential")
    assert Path.cwd() == isolated / "src", "[profiles.sequential] applies: its initializer ran"
    write(isolated / "pycrew.toml", '[profiles.dbg]\nlauncher = "sequential"\nseconds_idle = 5\n')
    with pytest.raises(ConfigError, match=r"key 'seconds_idle': unknown key: no option of the sequential controller"):
        pycrew.controller("dbg")


def test_config_error_is_an_options_error() -> None:
    assert issubclass(ConfigError, pycrew.OptionsError)


@pytest.mark.parametrize(
    ("text", "tp", "expected"),
    [
        ("3", int, 3),
        ("2.5", float, 2.5),
        ("inf", float, math.inf),
        ("off", bool, False),
        ("none", int | None, None),
        ("7", int | None, 7),
        ("abc", str | None, "abc"),
        ('["a", "b"]', tuple[str, ...], ["a", "b"]),
        ('{"A": "1"}', dict[str, str], {"A": "1"}),
        ("automatic", Any, "automatic"),
        ("true", Any, True),
    ],
)
def test_parse_env_value(text: str, tp: Any, expected: Any) -> None:
    assert parse_env_value(text, tp) == expected


@pytest.mark.parametrize(
    ("text", "tp", "message"),
    [
        # said "invalid literal for int() with base 10: '2.5'" (a probe, on 642ff07)
        ("2.5", int, r"expected a whole number \(e.g. 4\), got '2.5'"),
        ("x", int, "expected a whole number"),
        ("fast", float, r"expected a number \(e.g. 2.5, or inf for no limit\), got 'fast'"),
        ("maybe", bool, "expected true/false"),
        ("[1", list[int], "expected JSON"),
    ],
)
def test_parse_env_value_rejects_text_of_another_type(text: str, tp: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_env_value(text, tp)


# -- controller_arguments: what pycrew.controller(name, ...) calls ---------------------------


def test_controller_arguments_explicit_arguments_override_the_profile(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU)
    launcher, workers, options = controller_arguments("gpu", 2, {"seconds_idle": 5, "partition": "debug"}, cwd=isolated)
    assert (launcher, workers) == ("slurm", 2)
    assert options == {"name": "gpu", "seconds_idle": 5, "partition": "debug", "seconds_launch": 120.0}


def test_controller_arguments_without_workers_take_the_profiles(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU + '[profiles.plain]\nlauncher = "local"\nname = "mine"\n')
    assert controller_arguments("gpu", None, {}, cwd=isolated)[1] == 8
    launcher, workers, options = controller_arguments("plain", None, None, cwd=isolated)
    assert (launcher, workers, options) == ("local", None, {"name": "mine", "seconds_launch": 120.0}), "its own name= wins"


def test_controller_arguments_pass_a_launcher_name_through_unchanged(isolated: Path) -> None:
    assert controller_arguments("local", 3, {"seconds_idle": 1}, cwd=isolated) == ("local", 3, {"seconds_idle": 1})
    assert controller_arguments("sequential", None, {}, cwd=isolated) == ("sequential", None, {})


def test_a_bare_launcher_name_takes_the_defaults_its_launcher_has(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # [defaults] reached only profiles: pycrew.controller("local") ignored them, typos included
    write(isolated / "pycrew.toml", GPU.replace("[defaults]", '[defaults]\nworkers = 3\npartition = "cpu"\nseconds_idle = 30'))
    monkeypatch.setenv("PYCREW_LOCAL_SECONDS_IDLE", "1")  # environment overrides are for profiles in a file
    launcher, workers, options = controller_arguments("local", None, {"seconds_launch": 9}, cwd=isolated)
    assert (launcher, workers) == ("local", 3)
    assert options == {"seconds_launch": 9, "seconds_idle": 30.0}, "slurm's partition is no local option: skipped"
    assert controller_arguments("local", 2, {}, cwd=isolated)[1] == 2
    assert controller_arguments("sequential", None, {}, cwd=isolated) == ("sequential", None, {})
    write(isolated / "pycrew.toml", "[defaults]\nseconds_idel = 30\n")
    with pytest.raises(ConfigError, match=r"profile 'local', key 'seconds_idel'.*did you mean 'seconds_idle'"):
        controller_arguments("local", None, {}, cwd=isolated)


def test_a_profile_named_like_a_launcher_wins_only_when_a_file_defines_it(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_LOCAL_WORKERS", "4")
    assert controller_arguments("local", None, {}, cwd=isolated) == ("local", None, {}), "env alone makes no profile"
    write(isolated / "pycrew.toml", "[profiles.local]\nseconds_idle = 9\n")
    assert controller_arguments("local", None, {}, cwd=isolated) == ("local", 4, {"name": "local", "seconds_idle": 9.0})


def test_controller_arguments_for_an_unknown_name_list_launchers_and_profiles(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU)
    with pytest.raises(pycrew.LauncherNotFoundError, match=r"no launcher or profile named 'gpx' \(did you mean 'gpu'\?\); launchers: .*local.*; profiles: dev, gpu"):
        controller_arguments("gpx", None, {}, cwd=isolated)


def test_a_conflict_between_options_says_where_each_came_from(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On d0119a8 workers_at_start=4 from a profile against workers=2 from the call (or PYCREW_GPU_WORKERS=2)
    said only "must be None or between 0 and workers=2, got 4", not which file, variable or argument set each."""
    monkeypatch.chdir(isolated)
    path = write(isolated / "pycrew.toml", '[profiles.gpu]\nlauncher = "local"\nworkers = 4\nworkers_at_start = 4\n')
    with pytest.raises(pycrew.OptionsError) as info:
        pycrew.controller("gpu", workers=2)
    assert str(info.value).endswith(
        f"got 4 (workers_at_start=4 from {path}:profiles.gpu; workers=2 from an argument of pycrew.controller())")
    monkeypatch.setenv("PYCREW_GPU_WORKERS", "2")
    with pytest.raises(ConfigError) as info:
        load_profile("gpu", isolated)
    assert str(info.value).startswith(f"{path}:profiles.gpu: profile 'gpu', key 'workers_at_start': ")
    assert str(info.value).endswith("got 4 (workers=2 from env PYCREW_GPU_WORKERS)")


def test_a_controller_built_from_a_profile_has_its_options(isolated: Path) -> None:
    write(isolated / "pycrew.toml", GPU)
    launcher, workers, options = controller_arguments("dev", None, {"seconds_idle": 7}, cwd=isolated)
    c = pycrew.Controller(launcher, workers or 1, **options)
    try:
        assert (c.name, c.spec.name, c.options.workers) == ("dev", "local", 2)
        assert (c.options.seconds_launch, c.options.seconds_idle) == (120.0, 7.0)
    finally:
        c.terminate()
