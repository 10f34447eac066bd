"""The options: flag, then environment, then .env, then default; bad values named."""

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError

from session_daemon.config import ConfigError, read_dotenv, resolve
from session_daemon.tap import Options, makeService
from tests.conftest import WORKER_VARIABLES


def _resolve(flags=None, environ=None, dotenv=None):
    base = {"GLOBAL_AUTH_TOKEN": "t"}
    base.update(environ or {})
    return resolve(flags or {}, base, dotenv or {})


def test_the_plugin_is_found_the_way_twistd_finds_it():
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    maker = makers["session-worker"]
    assert maker.options is Options
    assert maker.makeService is makeService


def test_defaults_match_the_old_worker():
    settings = _resolve()
    assert settings.body_size == 5
    assert settings.body_limit == 5 * 1024 * 1024
    assert settings.http_logs is False
    assert settings.listen == "tcp:5656"
    assert settings.store == "sqlite:instances/sessions.db"


def test_a_flag_beats_the_environment_which_beats_dotenv():
    settings = _resolve(
        flags={"body-size": "1"},
        environ={"BODY_SIZE": "2", "HTTP_LOGS": "true"},
        dotenv={"BODY_SIZE": "3", "HTTP_LOGS": "false", "STORE": "sqlite:x.db"},
    )
    assert settings.body_size == 1
    assert settings.http_logs is True
    assert settings.store == "sqlite:x.db"


def test_port_alone_is_a_shorthand_for_listen():
    assert _resolve(environ={"PORT": "8080"}).listen == "tcp:8080"
    assert _resolve(environ={"PORT": "8080", "LISTEN": "tcp:9"}).listen == "tcp:9"


def test_a_missing_token_is_refused_with_its_name():
    with pytest.raises(ConfigError, match="GLOBAL_AUTH_TOKEN is not set"):
        resolve({}, {}, {})
    with pytest.raises(ConfigError, match="GLOBAL_AUTH_TOKEN"):
        resolve({}, {"GLOBAL_AUTH_TOKEN": ""}, {})


@pytest.mark.parametrize(
    "variable,value",
    [
        ("BODY_SIZE", "abc"),
        ("BODY_SIZE", "0"),
        ("BODY_SIZE", "-1"),
        ("BODY_SIZE", "nan"),
        ("HTTP_LOGS", "maybe"),
        ("LISTEN", "carrier-pigeon:5656"),
        ("LISTEN", "tcp:notaport"),
        ("PORT", "abc"),
        ("STORE", "mongodb://somewhere"),
        ("STORE", "sqlite:"),
        ("STORE_POOL_SIZE", "0"),
        ("STORE_POOL_SIZE", "many"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_value(variable, value):
    with pytest.raises(ConfigError) as raised:
        _resolve(environ={variable: value})
    assert variable in str(raised.value)
    assert value in str(raised.value)


def test_a_password_in_a_bad_store_is_not_repeated():
    with pytest.raises(ConfigError) as raised:
        _resolve(environ={"STORE": "mysql://user:hunter2@db/sessions"})
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "text,expected", [("true", True), ("1", True), ("FALSE", False), ("no", False)]
)
def test_http_logs_reads_the_usual_spellings(text, expected):
    assert _resolve(environ={"HTTP_LOGS": text}).http_logs is expected


def test_dotenv_is_read_from_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text(
        "# a comment\nGLOBAL_AUTH_TOKEN='from dotenv'\nexport BODY_SIZE=7\n"
    )
    assert read_dotenv(str(tmp_path)) == {
        "GLOBAL_AUTH_TOKEN": "from dotenv",
        "BODY_SIZE": "7",
    }
    assert read_dotenv(str(tmp_path / "nowhere")) == {}


def test_options_resolve_flags_over_the_environment(
    monkeypatch, tmp_path, no_proxy_env
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GLOBAL_AUTH_TOKEN=dotenv\nBODY_SIZE=9\n")
    monkeypatch.setenv("BODY_SIZE", "8")
    options = Options()
    options.parseOptions(["--token", "flag", "--http-logs", "yes"])
    settings = options.settings
    assert (settings.token, settings.body_size, settings.http_logs) == (
        "flag",
        8,
        True,
    )


def test_options_refuse_a_bad_flag_with_a_usage_error(
    monkeypatch, tmp_path, no_proxy_env
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="BODY_SIZE='abc'"):
        Options().parseOptions(["--token", "t", "--body-size", "abc"])


def test_help_names_every_variable():
    text = str(Options())
    for variable in WORKER_VARIABLES:
        assert variable in text


def test_the_settings_log_hides_the_token():
    settings = _resolve(environ={"GLOBAL_AUTH_TOKEN": "very-secret"})
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.for_log())
    assert settings.for_log()["GLOBAL_AUTH_TOKEN"] == "<redacted>"
