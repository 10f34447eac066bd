"""
The worker's settings: each from its flag, else its environment variable,
else the C{.env} file of the working directory, else its built-in default.
"""

import math
import os
from collections.abc import Mapping

from attrs import field, frozen
from dotenv import dotenv_values
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString

from session_daemon.store.registry import redact, store_from_description


class ConfigError(ValueError):
    """A setting is missing or has a value the worker cannot use."""


@frozen
class Setting:
    """One setting: its option name, its variable, its default and its help."""

    name: str
    variable: str
    default: str | None
    help: str


SETTINGS = [
    Setting("token", "GLOBAL_AUTH_TOKEN", None, "The shared apikey (required)."),
    Setting("body-size", "BODY_SIZE", "5", "Largest request body, in megabytes."),
    Setting("http-logs", "HTTP_LOGS", "false", "Log one line per request."),
    Setting("listen", "LISTEN", None, "Twisted endpoint to serve on [tcp:5656]."),
    Setting("port", "PORT", None, "Shorthand for --listen tcp:PORT."),
    Setting(
        "store", "STORE", "sqlite:instances/sessions.db", "Where sessions are kept."
    ),
    Setting(
        "store-pool-size",
        "STORE_POOL_SIZE",
        "4",
        "Threads or connections of the store.",
    ),
    Setting(
        "log-format",
        "LOG_FORMAT",
        "text",
        "Log lines as readable text, or json (one object a line).",
    ),
]

#: The values LOG_FORMAT may take.
LOG_FORMATS = ("text", "json")


@frozen
class Settings:
    """The resolved settings, converted and checked."""

    token: str = field(repr=False)
    body_size: float
    http_logs: bool
    listen: str
    store: str
    store_pool_size: int
    log_format: str = "text"

    @property
    def body_limit(self) -> int:
        """The body limit in bytes."""
        return int(self.body_size * 1024 * 1024)

    def for_log(self) -> dict:
        """The settings as they may be logged: token and passwords hidden."""
        return {
            "GLOBAL_AUTH_TOKEN": "<redacted>",
            "BODY_SIZE": f"{self.body_size:g}",
            "HTTP_LOGS": str(self.http_logs).lower(),
            "LISTEN": self.listen,
            "STORE": redact(self.store),
            "STORE_POOL_SIZE": str(self.store_pool_size),
            "LOG_FORMAT": self.log_format,
        }


def read_dotenv(folder: str | None = None) -> dict[str, str]:
    """The variables of C{.env} in C{folder} (the working directory), if any."""
    path = os.path.join(folder or os.getcwd(), ".env")
    if not os.path.isfile(path):
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def resolve(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str],
) -> Settings:
    """
    Resolve every setting (flag, environment, C{.env}, default) and convert
    it, raising L{ConfigError} naming the variable and value at fault.
    """
    raw = {}
    given = set()
    for setting in SETTINGS:
        for source in (
            flags.get(setting.name),
            environ.get(setting.variable),
            dotenv.get(setting.variable),
        ):
            if source is not None:
                raw[setting.variable] = source
                given.add(setting.variable)
                break
        else:
            raw[setting.variable] = setting.default

    token = raw["GLOBAL_AUTH_TOKEN"]
    if not token:
        raise ConfigError(
            "GLOBAL_AUTH_TOKEN is not set: set it (or --token) to the apikey "
            "the API servers send"
        )

    listen, variable = raw["LISTEN"], "LISTEN"
    if listen is None:
        listen = f"tcp:{raw['PORT']}" if "PORT" in given else "tcp:5656"
        variable = "PORT"
    _check_endpoint(variable, listen)

    store = raw["STORE"]
    pool_size = _positive_int("STORE_POOL_SIZE", raw["STORE_POOL_SIZE"])
    try:
        store_from_description(store, pool_size)
    except ValueError as e:
        raise ConfigError(f"STORE: {e}") from None

    return Settings(
        token=token,
        body_size=_megabytes("BODY_SIZE", raw["BODY_SIZE"]),
        http_logs=_boolean("HTTP_LOGS", raw["HTTP_LOGS"]),
        listen=listen,
        store=store,
        store_pool_size=pool_size,
        log_format=_log_format("LOG_FORMAT", raw["LOG_FORMAT"]),
    )


def _megabytes(variable: str, value: str) -> float:
    try:
        size = float(value)
    except ValueError:
        size = math.nan
    if not (math.isfinite(size) and size > 0):
        raise ConfigError(
            f"{variable}={value!r} is not a size in megabytes (a positive number)"
        )
    return size


def _positive_int(variable: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{variable}={value!r} is not a positive whole number")
    return number


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _boolean(variable: str, value: str) -> bool:
    folded = value.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ConfigError(f"{variable}={value!r} is not true or false")


def _log_format(variable: str, value: str) -> str:
    folded = value.strip().lower()
    if folded not in LOG_FORMATS:
        raise ConfigError(f"{variable}={value!r} is not text or json")
    return folded


def _check_endpoint(variable: str, description: str) -> None:
    # Parsing builds the endpoint without listening; it is how a typo, an
    # unknown endpoint type or a missing TLS certificate is caught early.
    try:
        serverFromString(reactor, description)
    except Exception as e:
        raise ConfigError(f"{variable}: {description!r} is not usable: {e}") from None
