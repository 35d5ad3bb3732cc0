"""Keeps the start of both servers free of third-party deprecation noise, and nothing else.

``install()`` is called by the launchers (bot/server/serve.py, bot/server/action_server.py) before Rasa,
rasa_sdk or TensorFlow are imported. It

* sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the environment already sets it: TensorFlow's C++ library then
  logs errors only (not its start-up INFO and WARNING lines). It reads the variable when it loads, so
  this must happen before the first ``import tensorflow``;
* keeps Alembic's plugin set-up (``alembic.runtime.plugins``: seven "setup plugin ..." INFO lines each time
  the hand-off schema is checked at start) at WARNING; its migration lines stay;
* adds one ``warnings`` filter per known third-party warning (``THIRD_PARTY_WARNINGS``), each by
  category, the module the warning is attributed to, and the start of its message. Any other warning
  is shown as before: from our own code, from a third party's other code, or another message.

Why they showed at all: importing ``sanic.app`` turns every ``DeprecationWarning`` of the process on
(``filterwarnings("once", category=DeprecationWarning)`` in sanic/app.py), and Rasa's
``configure_logging_and_warnings`` (run by ``rasa.__main__.main``) puts ``"once"`` in front for every
``UserWarning``. A filter only wins when it is in front of those, so ``install()`` imports ``sanic.app``
first, and ``keep_in_front_of_rasa()`` registers a Rasa plugin (``configure_commandline`` hook, run
right after Rasa configured its warnings) that puts them in front again.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Optional, Tuple, Type

import pluggy

TF_CPP_LOG_LEVEL = "2"

# (category, module the warning is attributed to, start of its message): what Rasa 3.6.21 and its
# dependencies (requirements/constraints.txt) print on `make run` (training included: bot/server/train.py),
# and where each comes from.
THIRD_PARTY_WARNINGS: Tuple[Tuple[str, str, str], ...] = (
    # SQLAlchemy 1.4's one "2.0 migration" warning, for Rasa's declarative_base() in its SQL tracker store
    (
        "sqlalchemy.exc:MovedIn20Warning",
        r"rasa\.core\.tracker_store|rasa\.engine\.caching",
        r"Deprecated API features detected! These feature\(s\) are not compatible with SQLAlchemy 2\.0",
    ),
    # Rasa's SQLTrackerStore.get_db_url builds sa.engine.url.URL(...) directly
    ("sqlalchemy.exc:SADeprecationWarning", r"rasa\.core\.tracker_store", r"Calling URL\(\) directly is deprecated"),
    # setuptools' pkg_resources: said by whichever of Rasa (schema validation), APScheduler (Rasa's reminders)
    # and limits (our rate limits) imports it first
    (
        "builtins:DeprecationWarning",
        r"rasa\.shared\.utils\.validation|rasa\.engine\.training\.fingerprinting|apscheduler|limits\.util",
        r"pkg_resources is deprecated as an API",
    ),
    # ... which then complains of the legacy namespace packages installed (mpl_toolkits, ruamel)
    ("builtins:DeprecationWarning", r"pkg_resources", r"Deprecated call to `pkg_resources\.declare_namespace\('[\w.]+'\)`"),
    # Sanic-Cors (Rasa's and rasa_sdk's CORS) compares versions with distutils
    ("builtins:DeprecationWarning", r"sanic_cors\.extension", r"distutils Version classes are deprecated"),
    # TensorFlow 2.12's TFLite helpers import jax.xla_computation when jax is installed
    ("builtins:DeprecationWarning", r"tensorflow\.lite\.python\.util", r"jax\.xla_computation is deprecated"),
    # matplotlib 3.5 and packaging 20.9 (Rasa's pins) use pyparsing 3's old camelCase names
    (
        "pyparsing:PyparsingDeprecationWarning",
        r"matplotlib\.fontconfig_pattern|packaging\.(markers|requirements)",
        r"'\w+' deprecated - use '\w+'",
    ),
    # typer 0.7 and spaCy 3.4's command line (loaded with the spaCy pipeline) use Click 8's old names
    (
        "builtins:DeprecationWarning",
        r"typer(\.completion)?",
        r"'(click\.utils\.get_binary_stream|click\.utils\.get_text_stream|BaseCommand)' is deprecated and will be removed in Click 9\.0",
    ),
    ("builtins:DeprecationWarning", r"spacy\.cli\._util", r"Importing 'parser\.split_arg_string' is deprecated"),
)

hookimpl = pluggy.HookimplMarker("rasa")


def _category(name: str) -> Optional[Type[Warning]]:
    module, _, attribute = name.partition(":")
    try:
        category = getattr(__import__(module, fromlist=[attribute]), attribute)
    except (ImportError, AttributeError):  # that library, or that warning, is not there: nothing to filter
        return None
    return category if isinstance(category, type) and issubclass(category, Warning) else None


def add_filters() -> None:
    """Puts the filters of THIRD_PARTY_WARNINGS in front of every other filter (again, if they were)."""
    for category_name, module, message in reversed(THIRD_PARTY_WARNINGS):
        category = _category(category_name)
        if category is not None:
            warnings.filterwarnings("ignore", message=message, category=category, module=rf"(?:{module})\Z")


class KeepFiltersInFront:
    """Rasa plugin: once ``rasa.__main__.main`` has set its warning filters, ours go in front again."""

    @hookimpl
    def configure_commandline(self, cmdline_arguments: object) -> None:
        add_filters()
        return None  # Rasa takes a returned value for the endpoints file: give none


def install() -> None:
    """Before Rasa, rasa_sdk and TensorFlow are imported: TensorFlow's C++ log level, Alembic's plugin
    log, and the warning filters."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_LOG_LEVEL)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    import sanic.app  # noqa: F401  its import adds the "once" filter for DeprecationWarning: ours go in front of it

    add_filters()


def keep_in_front_of_rasa() -> None:
    """Registers KeepFiltersInFront with Rasa's plugin manager (the Rasa server's launcher only)."""
    from rasa.plugin import plugin_manager

    manager = plugin_manager()
    if not any(isinstance(plugin, KeepFiltersInFront) for plugin in manager.get_plugins()):
        manager.register(KeepFiltersInFront(), "bankfeed-quiet-start")
