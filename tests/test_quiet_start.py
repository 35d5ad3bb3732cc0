"""`make run` starts cleanly: our banner and addresses, none of the third-party deprecation warnings
(bot/server/quiet_start.py), while our own warnings, and any warning the filters do not name exactly,
still show."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

from bot.server import quiet_start
from tests import servers

# What each filter was written for, as Python prints it on an unfiltered start (the warning's own
# category, the module it is attributed to, and its message).
SEEN_ON_MAKE_RUN = [
    (
        "sqlalchemy.exc:MovedIn20Warning",
        "rasa.core.tracker_store",
        "Deprecated API features detected! These feature(s) are not compatible with SQLAlchemy 2.0. To prevent "
        'incompatible upgrades prior to updating applications, ensure requirements files are pinned to "sqlalchemy<2.0".',
    ),
    (
        "sqlalchemy.exc:SADeprecationWarning",
        "rasa.core.tracker_store",
        "Calling URL() directly is deprecated and will be disabled in a future release.  The public constructor for URL "
        "is now the URL.create() method.",
    ),
    (
        "builtins:DeprecationWarning",
        "rasa.shared.utils.validation",
        "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/pkg_resources.html",
    ),
    ("builtins:DeprecationWarning", "apscheduler", "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/"),
    # training (the first `make run`, bot/server/train.py)
    (
        "builtins:DeprecationWarning",
        "rasa.engine.training.fingerprinting",
        "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/pkg_resources.html",
    ),
    (
        "sqlalchemy.exc:MovedIn20Warning",
        "rasa.engine.caching",
        "Deprecated API features detected! These feature(s) are not compatible with SQLAlchemy 2.0.",
    ),
    ("builtins:DeprecationWarning", "limits.util", "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/"),
    (
        "builtins:DeprecationWarning",
        "pkg_resources",
        "Deprecated call to `pkg_resources.declare_namespace('mpl_toolkits')`.\nImplementing implicit namespace packages "
        "(as specified in PEP 420) is preferred to `pkg_resources.declare_namespace`.",
    ),
    ("builtins:DeprecationWarning", "pkg_resources", "Deprecated call to `pkg_resources.declare_namespace('ruamel')`."),
    (
        "builtins:DeprecationWarning",
        "sanic_cors.extension",
        "distutils Version classes are deprecated. Use packaging.version instead.",
    ),
    ("builtins:DeprecationWarning", "tensorflow.lite.python.util", "jax.xla_computation is deprecated. Please use the AOT APIs."),
    (
        "pyparsing:PyparsingDeprecationWarning",
        "matplotlib.fontconfig_pattern",
        "'setParseAction' deprecated - use 'set_parse_action'",
    ),
    ("pyparsing:PyparsingDeprecationWarning", "packaging.requirements", "'originalTextFor' deprecated - use 'original_text_for'"),
    ("pyparsing:PyparsingDeprecationWarning", "packaging.markers", "'setParseAction' deprecated - use 'set_parse_action'"),
    ("builtins:DeprecationWarning", "typer", "'click.utils.get_binary_stream' is deprecated and will be removed in Click 9.0."),
    (
        "builtins:DeprecationWarning",
        "typer.completion",
        "'BaseCommand' is deprecated and will be removed in Click 9.0. Use 'Command' instead.",
    ),
    (
        "builtins:DeprecationWarning",
        "spacy.cli._util",
        "Importing 'parser.split_arg_string' is deprecated, it will only be available in 'shell_completion' in Click 9.0.",
    ),
]


def category(name: str):
    module, _, attribute = name.partition(":")
    return getattr(__import__(module, fromlist=[attribute]), attribute)


def shown(cases):
    """Which of ``(category, module, message)`` warnings would be printed with the filters in front of
    sanic's and Rasa's "show them" filters."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # stands for sanic's and Rasa's "once": everything shows
        quiet_start.add_filters()
        for i, (cat, module, message) in enumerate(cases):
            warnings.warn_explicit(message, cat, f"/somewhere/{module.replace('.', '/')}.py", i + 1, module=module)
    return [(w.category, w.filename, str(w.message)) for w in caught]


def test_every_warning_seen_on_make_run_is_filtered():
    cases = [(category(c), m, msg) for c, m, msg in SEEN_ON_MAKE_RUN]
    assert shown(cases) == []
    assert {c for c, _, _ in SEEN_ON_MAKE_RUN} == {c for c, _, _ in quiet_start.THIRD_PARTY_WARNINGS}


def test_the_filters_are_precise():
    """The same message from our code, another message from the same module, or the same message as
    another category: all still shown."""
    cases = []
    for cat, module, message in SEEN_ON_MAKE_RUN:
        cases.append((category(cat), "bot.server.channels.rest", message))  # our own code says it
        cases.append((category(cat), "actions.actions", message))
        cases.append((category(cat), module, "Something else is deprecated."))  # the same module, another warning
        cases.append((RuntimeWarning, module, message))  # not a deprecation
        cases.append((category(cat), module + "_other", message))  # a module of a similar name
    assert len(shown(cases)) == len(cases)


def test_our_own_warnings_print_once_the_launcher_filters_are_in():
    """In a process set up as the launchers set it up, a DeprecationWarning of ours is printed, the
    third-party one of the same text is not."""
    code = textwrap.dedent("""
        import warnings
        from bot.server import quiet_start
        quiet_start.install()
        text = "distutils Version classes are deprecated. Use packaging.version instead."
        warnings.warn_explicit(text, DeprecationWarning, "sanic_cors/extension.py", 39, module="sanic_cors.extension")
        warnings.warn_explicit(text, DeprecationWarning, "bot/server/serve.py", 7, module="bot.server.serve")
        warnings.warn_explicit("a setting of ours is deprecated", DeprecationWarning, "bot/settings.py", 9,
                               module="bot.settings")
    """)
    env = {k: v for k, v in servers.base_env().items() if k != "PYTHONWARNINGS"}
    result = subprocess.run([sys.executable, "-c", code], cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sanic_cors/extension.py" not in result.stderr
    assert "bot/server/serve.py:7: DeprecationWarning: distutils Version classes are deprecated" in result.stderr
    assert "bot/settings.py:9: DeprecationWarning: a setting of ours is deprecated" in result.stderr


# ---------------------------------------------------------------- training, for real

TINY_PROJECT = {
    "config.yml": """
        recipe: default.v1
        language: en
        assistant_id: tiny
        pipeline:
          - name: WhitespaceTokenizer
          - name: CountVectorsFeaturizer
          - name: DIETClassifier
            epochs: 1
            random_seed: 1
            constrain_similarities: true  # (Rasa's own advice otherwise: a real warning, which shows)
            evaluate_every_number_of_epochs: 1
        policies:
          - name: RulePolicy
    """,
    # utter_sent_from_code is in no story or rule: `rasa train` warned about each such response
    "domain.yml": """
        version: "3.1"
        intents: [greet, bye]
        responses:
          utter_hello: [{text: "Hello"}]
          utter_sent_from_code: [{text: "Sent by a custom action"}]
    """,
    "data/nlu.yml": """
        version: "3.1"
        nlu:
          - intent: greet
            examples: |
              - hello
              - hi there
          - intent: bye
            examples: |
              - bye
              - see you
    """,
    "data/rules.yml": """
        version: "3.1"
        rules:
          - rule: greet
            steps:
              - intent: greet
              - action: utter_hello
    """,
}


def test_training_as_make_does_prints_no_third_party_warnings(tmp_path):
    """The first `make run` trains the model (Makefile -> bot/server/train.py) before the banner."""
    for name, text in TINY_PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in servers.base_env().items() if k not in ("PYTHONWARNINGS", "TF_CPP_MIN_LOG_LEVEL")}
    env.update({"TF_DETERMINISTIC_OPS": "1", "PYTHONPATH": str(servers.ROOT)})  # the Makefile exports it
    env.pop("SQLALCHEMY_SILENCE_UBER_WARNING", None)
    args = ["--config", "config.yml", "--domain", "domain.yml", "--data", "data", "--out", "models", "--fixed-model-name", "tiny"]
    result = subprocess.run(
        [sys.executable, "-m", "bot.server.train", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert (tmp_path / "models" / "tiny.tar.gz").is_file()
    assert "Model written to models/tiny.tar.gz" in out
    assert not re.search(r"\w*Warning\b", out), out[-5000:]
    assert "is not used in any story or rule" not in out
    assert "[debug" not in out  # Rasa's policy debug lines (structlog) stay off, as with `rasa train`


# ---------------------------------------------------------------- make run, for real

NOISE = [
    re.compile(r"DeprecationWarning|FutureWarning|PendingDeprecationWarning"),
    re.compile(r"declare_namespace|pkg_resources"),
    re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]", re.M),  # TensorFlow's C++ log lines
    re.compile(r"tensorflow/core|cpu_feature_guard|oneDNN|TF_DETERMINISTIC_OPS"),
    re.compile(r"site-packages/\S+\.py:\d+: \w*Warning: "),  # any Python warning of a third party
]


class Run:
    """scripts/run.sh in its own process group, its output collected as it comes."""

    def __init__(self, env):
        self.proc = subprocess.Popen(
            ["scripts/run.sh"],
            cwd=servers.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text in self.output:
                return True
            time.sleep(0.5)
        return text in self.output

    def interrupt(self):
        """Ctrl-C, as a terminal sends it: SIGINT to the whole process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.reader.join(timeout=10)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory, fake_banks, trained_model):
    """scripts/run.sh (what `make run` runs) on free ports, its state in a temporary directory, with the
    environment `make` gives it but none of the quietening variables the test suite sets for itself."""
    workdir = tmp_path_factory.mktemp("make-run")
    rasa_port, actions_port = servers.free_port(), servers.free_port()
    endpoints = servers.write_endpoints(workdir / "endpoints.yml", actions_port, workdir / "tracker.db")
    env = servers.base_env(
        {
            "PY": sys.executable,
            "RASA_PORT": str(rasa_port),
            "ACTIONS_PORT": str(actions_port),
            "ENDPOINTS": str(endpoints),
            "LOG_DIR": str(workdir / "log"),
            "RASA_API_TOKEN": "make-run-test-token-0123456789",
            "BANKFEED_VAR_DIR": str(workdir),
            "HANDOFF_DB_URL": f"sqlite:///{workdir / 'handoff.db'}",
            "BANK_DIRECTORY_PATH": str(servers.write_test_directory(workdir / "banks.yml", fake_banks.base_url)),
            "BANKFEED_SETTINGS": str(servers.write_test_settings(workdir / "bankfeed.yml", fake_banks.url("/canary/healthy"))),
            "TF_DETERMINISTIC_OPS": "1",  # the Makefile exports it
        }
    )
    for name in ("TF_CPP_MIN_LOG_LEVEL", "SQLALCHEMY_SILENCE_UBER_WARNING", "PYTHONWARNINGS", "RASA_API_TOKEN_FILE"):
        env.pop(name, None)
    run = Run(env)
    try:
        up = run.wait_for("Bank-feed assistant is up", timeout=240)
        time.sleep(1)  # the banner's last lines
    finally:
        run.interrupt()
    assert up, run.output[-5000:]
    return run, rasa_port, actions_port, workdir


def test_make_run_prints_our_banner_with_the_addresses(make_run):
    run, rasa_port, actions_port, workdir = make_run
    out = run.output
    assert f"Chat widget demo  http://localhost:{rasa_port}/chat/" in out
    assert f"Agent console     http://localhost:{rasa_port}/agent/" in out
    assert f"REST channel      POST http://localhost:{rasa_port}/webhooks/rest/webhook" in out
    assert f"Action server     http://127.0.0.1:{actions_port}" in out
    # one Rasa process (WORKERS=1, or no nginx) logs to rasa.log; several to rasa-<i>.log behind nginx
    assert f"Logs: {workdir / 'log'}/rasa" in out and f"{workdir / 'log'}/actions.log" in out
    assert "Stopped." in out  # Ctrl-C stops them all
    rasa_logs = sorted((workdir / "log").glob("rasa*.log"))
    assert rasa_logs and all("Rasa server is up and running." in log.read_text() for log in rasa_logs)
    assert "Action endpoint is up and running" in (workdir / "log" / "actions.log").read_text()


def test_make_run_prints_no_third_party_warnings_and_still_ours(make_run):
    run, *_ = make_run
    out = run.output
    for noise in NOISE:
        assert not noise.search(out), f"{noise.pattern!r} in:\n{out}"
    # our own warnings (channels without their secrets) and the patch report still show
    assert "WARNING  bot.server.channels.slack" in out
    assert "Rasa 3.6.21 patches in place" in out
