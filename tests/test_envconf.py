import os
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard import envconf


@pytest.fixture
def env(monkeypatch):
    def set_(**values):
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return set_


@pytest.mark.parametrize("raw, expected", [("1", True), ("yes", True), ("off", False), ("", False)])
def test_env_bool_reads_common_spellings(env, raw, expected):
    env(PTD_FLAG=raw)
    assert envconf.env_bool("PTD_FLAG") is expected


def test_env_bool_rejects_nonsense(env):
    env(PTD_FLAG="maybe")
    with pytest.raises(ImproperlyConfigured, match="PTD_FLAG must be a boolean"):
        envconf.env_bool("PTD_FLAG")


def test_env_int_rejects_text_and_low_values(env):
    env(PTD_N="three")
    with pytest.raises(ImproperlyConfigured, match="PTD_N must be an integer"):
        envconf.env_int("PTD_N", 1)
    env(PTD_N="0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        envconf.env_int("PTD_N", 1, minimum=1)
    env(PTD_N="4")
    assert envconf.env_int("PTD_N", 1, minimum=1) == 4


def test_env_int_default_when_unset(monkeypatch):
    monkeypatch.delenv("PTD_N", raising=False)
    assert envconf.env_int("PTD_N", 7) == 7


def test_env_list_splits_and_strips(env):
    env(HOSTS=" a.example , b.example,,")
    assert envconf.env_list("HOSTS", []) == ["a.example", "b.example"]


def test_env_url_checks_scheme(env):
    env(DATABASE_URL="mysql://x")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must start with"):
        envconf.env_url("DATABASE_URL", ("postgres",))
    env(DATABASE_URL="postgres://u@h/db")
    assert envconf.env_url("DATABASE_URL", ("postgres",)) == "postgres://u@h/db"


def test_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = envconf.secret_key(tmp_path)
    assert len(first) >= 50
    assert envconf.secret_key(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600


def test_secret_key_from_env_wins_and_must_be_long(tmp_path, env):
    env(SECRET_KEY="x" * 40)
    assert envconf.secret_key(tmp_path) == "x" * 40
    assert not (tmp_path / "secret_key").exists()
    env(SECRET_KEY="short")
    with pytest.raises(ImproperlyConfigured, match="at least 32"):
        envconf.secret_key(tmp_path)


def test_data_dir_is_created(tmp_path, env):
    env(PTD_DATA_DIR=str(tmp_path / "a" / "b"))
    assert envconf.data_dir().is_dir()


def test_data_dir_is_private_to_its_owner(tmp_path, env):
    """It holds the sessions, the secret key and run logs: no other local user may read it,
    including a directory an earlier version made with the umask's modes."""
    env(PTD_DATA_DIR=str(tmp_path / "new"))
    assert stat.S_IMODE(envconf.data_dir().stat().st_mode) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    env(PTD_DATA_DIR=str(old))
    assert stat.S_IMODE(envconf.data_dir().stat().st_mode) == 0o700


def test_static_files_skip_compressing_what_whitenoise_skips_and_source_maps(settings):
    from whitenoise.compress import Compressor

    skipped = set(settings.WHITENOISE_SKIP_COMPRESS_EXTENSIONS)
    assert set(Compressor.SKIP_COMPRESS_EXTENSIONS) | {"map"} <= skipped
