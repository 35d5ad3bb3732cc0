"""deploy/ is tested, not only written (docs/production.md, "How the deployment files are checked").

* Every Kubernetes manifest in deploy/k8s/ is validated, strictly (an unknown field is an error),
  against the Kubernetes KUBERNETES_VERSION API schemas that kubernetes-validate bundles (no network:
  the sockets are closed while it runs); kustomization.yaml lists exactly the manifests present, and
  what ``kubectl kustomize`` renders from it is validated too (when kubectl is installed).
* deploy/docker-compose.yml is validated against the Compose Specification's JSON schema, vendored
  in tests/fixtures/compose-spec/ (its README says where it comes from).
* deploy/topology.yml says once which module each process runs with which arguments, on which port,
  which health path, which environment variables: scripts/prod-up.sh (what tests/test_multi_replica.py
  runs), the compose file, the k8s manifests and the two Dockerfiles are each parsed and held to it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
PROD_UP = ROOT / "scripts" / "prod-up.sh"
COMPOSE_SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"
# The newest Kubernetes whose schemas kubernetes-validate 1.28.3 bundles: its later releases need
# jsonschema>=4.18 (the `referencing` registry), and Rasa 3.6 requires jsonschema<4.18.
KUBERNETES_VERSION = "1.28"
# Not applied by kustomization.yaml: the secret is created out of band (its comment says how).
NOT_IN_KUSTOMIZATION = {"kustomization.yaml", "secret.example.yaml"}
# Options whose value is each deployment's own (the port is checked against the topology's).
PER_DEPLOYMENT_OPTIONS = {"--port", "--interface", "--wait"}
LOCAL_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s)]*)")

TOPOLOGY = yaml.safe_load((ROOT / "deploy" / "topology.yml").read_text())
PROCESSES: Dict[str, dict] = TOPOLOGY["processes"]
IMAGES: Dict[str, dict] = TOPOLOGY["images"]


# --------------------------------------------------------------------------- helpers
def _yaml_docs(path: Path) -> List[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _k8s_docs() -> List[Tuple[str, dict]]:
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) for doc in _yaml_docs(path)]


def _parse_argv(argv: Iterable[str]) -> Tuple[List[str], Dict[str, object]]:
    """(positional words, {--option: value or True}) of a command line."""
    tokens = list(argv)
    positional: List[str] = []
    options: Dict[str, object] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                options[token] = tokens[i + 1]
                i += 2
                continue
            options[token] = True
        else:
            positional.append(token)
        i += 1
    return positional, options


def _process_of(argv: List[str]) -> Optional[str]:
    """The topology process whose program this command line runs (its first two words)."""
    for name, process in PROCESSES.items():
        if argv[:3] == process["run"][:3] or (argv[:2] == process["run"][:2] and not process["run"][1].startswith("-")):
            return name
    return None


def _check_argv(argv: List[str], process_name: str, where: str, port: Optional[str] = "from argv") -> None:
    process = PROCESSES[process_name]
    positional, options = _parse_argv(argv)
    want_positional, want_options = _parse_argv(process["run"])
    assert positional == want_positional, f"{where}: runs {positional}, deploy/topology.yml says {want_positional}"
    common = {k: v for k, v in options.items() if k not in PER_DEPLOYMENT_OPTIONS}
    assert common == want_options, f"{where}: arguments {common}, deploy/topology.yml says {want_options}"
    if "port" in process and port == "from argv":
        assert options.get("--port") == str(process["port"]), (
            f"{where}: --port {options.get('--port')}, deploy/topology.yml says {process['port']}"
        )


def _check_env(names: Iterable[str], process_name: str, where: str) -> None:
    given = set(names)
    for wanted in PROCESSES[process_name]["env"]:
        choices = wanted if isinstance(wanted, list) else [wanted]
        assert given & set(choices), f"{where}: sets none of {choices} (deploy/topology.yml, {process_name})"


def _check_url(url: str, process_name: str, where: str) -> None:
    match = LOCAL_URL.search(url)
    assert match, f"{where}: no local URL in {url!r}"
    process = PROCESSES[process_name]
    assert (int(match.group(1)), match.group(2)) == (process["port"], process["health"]), (
        f"{where}: checks port {match.group(1)} path {match.group(2)}, "
        f"deploy/topology.yml says port {process['port']} path {process['health']}"
    )


class Dockerfile:
    def __init__(self, path: Path):
        text = re.sub(r"\\\n", " ", path.read_text())
        self.instructions: List[Tuple[str, str]] = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                self.instructions.append((word.upper(), rest.strip()))

    def last(self, instruction: str) -> str:
        values = [rest for word, rest in self.instructions if word == instruction]
        assert values, f"no {instruction}"
        return values[-1]

    def exec_form(self, instruction: str) -> List[str]:
        return json.loads(self.last(instruction))

    def copied(self) -> List[str]:
        """Paths (relative to WORKDIR) that COPY puts in the image."""
        paths = []
        for word, rest in self.instructions:
            if word != "COPY":
                continue
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            *sources, dest = parts
            for source in sources:
                if dest.endswith("/") or dest in (".", "./"):
                    paths.append(str(Path(dest) / Path(source).name) if dest not in (".", "./") else Path(source).name)
                else:
                    paths.append(dest)
        return [p.rstrip("/") for p in paths]


DOCKERFILES = {name: Dockerfile(ROOT / image["dockerfile"]) for name, image in IMAGES.items()}


# --------------------------------------------------------------------------- Kubernetes schemas
@pytest.fixture
def no_network(monkeypatch):
    def refuse(self, address):
        raise AssertionError(f"the manifest validation tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _validate_k8s(doc: dict, where: str) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        pytest.fail(f"{where} ({doc.get('kind')}/{doc.get('metadata', {}).get('name')}) at {path}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        pytest.fail(f"{where}: {e.message}")


@pytest.mark.parametrize("filename", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_k8s_manifest_is_valid_for_the_kubernetes_version(filename, no_network):
    docs = _yaml_docs(K8S / filename)
    assert docs, f"{filename} holds no object"
    for doc in docs:
        _validate_k8s(doc, filename)


def test_strict_validation_refuses_an_unknown_field_and_a_wrong_type(no_network):
    deployment = next(doc for _, doc in _k8s_docs() if doc["kind"] == "Deployment")
    for mutate, what in (
        (lambda c: c.__setitem__("readinessProbes", {}), "readinessProbes"),
        (lambda c: c["ports"][0].__setitem__("containerPort", "5005"), "'5005' is not of type 'integer'"),
    ):
        broken = json.loads(json.dumps(deployment))
        mutate(broken["spec"]["template"]["spec"]["containers"][0])
        with pytest.raises(kubernetes_validate.ValidationError) as caught:
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
        assert what in caught.value.message


def test_kustomization_lists_exactly_the_manifests_present():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    present = {p.name for p in K8S.glob("*.y*ml")} - NOT_IN_KUSTOMIZATION
    assert set(listed) == present
    images = {image["name"] for image in kustomization["images"]}
    assert images == {image["name"] for image in IMAGES.values()}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_what_kustomize_renders_is_valid(no_network):
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    pushed = {f"{image['newName']}:{image['newTag']}" for image in kustomization["images"]}
    listed = [doc for name, doc in _k8s_docs() if name not in NOT_IN_KUSTOMIZATION]
    assert len(docs) == len(listed)
    for doc in docs:
        _validate_k8s(doc, "kubectl kustomize deploy/k8s")
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "bankfeed"
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert container["image"] in pushed, f"rendered image {container['image']}, kustomization.yaml pushes {pushed}"


# --------------------------------------------------------------------------- Compose schema
def _compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert "draft-07" in schema["$schema"]
    return jsonschema.Draft7Validator(schema)


def test_compose_file_is_valid_for_the_compose_specification():
    errors = sorted(_compose_validator().iter_errors(yaml.safe_load(COMPOSE.read_text())), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(text: str, env: Dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ for a literal $."""

    def value(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        assert not operator.endswith("?"), f"compose would stop: {name} is not set ({argument})"
        return argument if operator.endswith("-") else ""

    return COMPOSE_VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def test_compose_variables_are_in_the_env_example_and_the_result_is_valid():
    text = COMPOSE.read_text()
    example = (ROOT / "deploy" / "compose.env.example").read_text()
    settable = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", example, re.M))
    required = set(re.findall(r"^([A-Z][A-Z0-9_]*)=$", example, re.M))
    used = COMPOSE_VARIABLE.findall(text.replace("$$", ""))
    names = {name for name, _, _ in used}
    assert names <= settable, f"not in deploy/compose.env.example: {sorted(names - settable)}"
    must = {name for name, operator, _ in used if operator.endswith("?")}
    assert must == required, "deploy/compose.env.example's empty lines must be the variables compose requires"
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _interpolate(text, {})
    filled = yaml.safe_load(_interpolate(text, {name: f"secret-{name.lower()}" for name in required}))
    errors = list(_compose_validator().iter_errors(filled))
    assert not errors, [e.message for e in errors]
    assert filled["services"]["nginx"]["ports"] == ["8080:8080"]
    assert filled["services"]["redis"]["healthcheck"]["test"][1].startswith('redis-cli -a "$REDIS_PASSWORD"')


def test_compose_schema_refuses_a_misspelt_key_and_a_wrong_condition():
    validator = _compose_validator()
    compose = yaml.safe_load(COMPOSE.read_text())
    misspelt = json.loads(json.dumps(compose))
    misspelt["services"]["rasa-1"]["healthchek"] = misspelt["services"]["rasa-1"].pop("healthcheck")
    assert any("healthchek" in e.message for e in validator.iter_errors(misspelt))
    wrong = json.loads(json.dumps(compose))
    wrong["services"]["rasa-1"]["depends_on"]["migrate"]["condition"] = "service_done"
    assert list(validator.iter_errors(wrong))


# --------------------------------------------------------------------------- the topology
def test_topology_names_what_the_code_reads():
    endpoint_vars = set(re.findall(r"^[^#\n]*\$\{([A-Z0-9_]+)\}", (ROOT / "endpoints.prod.yml").read_text(), re.M))
    rasa_env = {n for e in PROCESSES["rasa"]["env"] for n in (e if isinstance(e, list) else [e])}
    assert endpoint_vars and endpoint_vars <= rasa_env, f"endpoints.prod.yml reads {sorted(endpoint_vars - rasa_env)}"
    code = "\n".join(p.read_text() for p in [*ROOT.glob("bot/**/*.py"), ROOT / "deploy" / "db_setup.py"])
    for process in PROCESSES.values():
        for entry in process["env"]:
            for name in entry if isinstance(entry, list) else [entry]:
                assert name in endpoint_vars or f'"{name}"' in code, f"deploy/topology.yml names {name}: nothing reads it"
        program = process["run"][2] if process["run"][1] == "-m" else process["run"][1]
        path = ROOT / (program.replace(".", "/") + ".py" if process["run"][1] == "-m" else program)
        assert path.is_file(), f"{program} is not in the repository"


# ---- scripts/prod-up.sh
def _prod_up_lines() -> List[str]:
    return [line.strip() for line in re.sub(r"\\\n\s*", " ", PROD_UP.read_text()).splitlines()]


def _prod_up_defaults() -> Dict[str, str]:
    defaults = {}
    for line in _prod_up_lines():
        match = re.match(r'^(?:export\s+)?([A-Z_][A-Z0-9_]*)="\$\{\1:-([^}]*)\}"', line)
        if match:
            defaults[match.group(1)] = match.group(2)
    return defaults


def _prod_up_port_arrays() -> Dict[str, int]:
    """{array name: the default port of its first element} from `xs+=($((BASE + i - 1)))`."""
    defaults = _prod_up_defaults()
    arrays = {}
    for line in _prod_up_lines():
        for name, base in re.findall(r"(\w+)\+=\(\$\(\((\w+) \+ i - 1\)\)\)", line):
            arrays[name] = int(defaults[base])
    return arrays


def _prod_up_word(word: str) -> str:
    """A word of prod-up.sh with its variables replaced by their defaults ($PY is `python`)."""
    defaults = _prod_up_defaults()
    arrays = _prod_up_port_arrays()
    word = re.sub(r"\$\{(\w+)\[[^]]*\]\}", lambda m: str(arrays.get(m.group(1), m.group(0))), word)
    word = word.replace("$PY", "python").replace("${PY}", "python")
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), word)


def _prod_up_commands() -> Dict[str, List[List[str]]]:
    commands: Dict[str, List[List[str]]] = {}
    for line in _prod_up_lines():
        if line.startswith("start ") and '"$PY"' in line:
            words = shlex.split(line)[3:]  # start NAME MARKER cmd...
        elif line.startswith('"$PY" deploy/'):
            words = shlex.split(line.split("||")[0])
        else:
            continue
        argv = [_prod_up_word(w) for w in words]
        name = _process_of(argv)
        if name:
            commands.setdefault(name, []).append(argv)
    return commands


def test_prod_up_runs_the_topology():
    commands = _prod_up_commands()
    assert set(commands) == set(PROCESSES), f"prod-up.sh runs {sorted(commands)}"
    for name, argvs in commands.items():
        for argv in argvs:
            _check_argv(argv, name, f"scripts/prod-up.sh ({shlex.join(argv)})")


def test_prod_up_waits_on_the_health_paths():
    waited = {}
    for line in _prod_up_lines():
        if line.startswith("wait_http "):
            words = shlex.split(line)
            waited[words[1].split("-")[0]] = _prod_up_word(words[2])
    for name, process in PROCESSES.items():
        if "health" in process:
            assert name in waited, f"prod-up.sh does not wait for {name}"
            _check_url(waited[name], name, f"scripts/prod-up.sh wait_http {name}")


def test_prod_up_sets_the_environment():
    exported = set()
    for line in _prod_up_lines():
        match = re.match(r"^export\s+(.*)", line)
        if match:
            exported |= set(re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)(?==|\s|$)", match.group(1)))
    for name in PROCESSES:
        _check_env(exported, name, "scripts/prod-up.sh")


# ---- the images
def test_images_run_the_topology():
    pins = (ROOT / "pyproject.toml").read_text()
    bases = {"rasa": r'"rasa\[spacy\]==([\d.]+)"', "actions": r'"rasa-sdk==([\d.]+)"'}
    for name, dockerfile in DOCKERFILES.items():
        version = re.search(bases[name], pins).group(1)
        assert re.match(rf"rasa/rasa(-sdk)?:{re.escape(version)}\b", dockerfile.last("FROM")), (
            f"{IMAGES[name]['dockerfile']}: FROM {dockerfile.last('FROM')}, pyproject.toml pins {version}"
        )
        argv = dockerfile.exec_form("ENTRYPOINT") + dockerfile.exec_form("CMD")
        assert _process_of(argv) == name, f"{IMAGES[name]['dockerfile']} runs {argv}"
        if name == "rasa":  # the orchestrators add --enable-api (the image alone serves no HTTP API)
            argv = argv + ["--enable-api"]
        _check_argv(argv, name, f"{IMAGES[name]['dockerfile']} ENTRYPOINT + CMD")
        assert dockerfile.last("EXPOSE") == str(PROCESSES[name]["port"])
    for process in PROCESSES.values():
        copied = DOCKERFILES[process["image"]].copied()
        for word in process["run"]:
            if (ROOT / word).is_file():
                assert any(word == c or word.startswith(c + "/") for c in copied), f"{process['image']} image lacks {word}"


# ---- deploy/docker-compose.yml
def _compose_services() -> Dict[str, Tuple[str, dict]]:
    """{compose service: (topology process, service)} of the services built from our Dockerfiles."""
    compose = yaml.safe_load(COMPOSE.read_text())
    found = {}
    for service_name, service in compose["services"].items():
        if "build" not in service:
            continue
        image = next(n for n, i in IMAGES.items() if i["dockerfile"] == service["build"]["dockerfile"])
        assert service["image"].split("/")[-1].split(":")[0] == IMAGES[image]["name"].split("/")[-1]
        dockerfile = DOCKERFILES[image]
        entrypoint = service.get("entrypoint") or dockerfile.exec_form("ENTRYPOINT")
        command = service.get("command") or ([] if "entrypoint" in service else dockerfile.exec_form("CMD"))
        argv = list(entrypoint) + list(command)
        process = _process_of(argv)
        assert process, f"compose service {service_name} runs {argv}: no process of deploy/topology.yml"
        assert PROCESSES[process]["image"] == image, f"compose service {service_name} runs {process} from the {image} image"
        _check_argv(argv, process, f"compose service {service_name}")
        found[service_name] = (process, service)
    return found


def test_compose_runs_the_topology():
    services = _compose_services()
    assert {process for process, _ in services.values()} == set(PROCESSES)
    for service_name, (process, service) in services.items():
        _check_env(service["environment"], process, f"compose service {service_name}")
        if "health" in PROCESSES[process]:
            test = service["healthcheck"]["test"]
            _check_url(" ".join(test) if isinstance(test, list) else test, process, f"compose {service_name} healthcheck")


def test_compose_nginx_proxies_to_the_topology_ports():
    services = _compose_services()
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", (ROOT / "deploy" / "nginx" / "compose.conf").read_text(), re.M)
    assert upstreams
    for host, port in upstreams:
        assert host in services, f"deploy/nginx/compose.conf proxies to {host}, not a compose service"
        assert int(port) == PROCESSES[services[host][0]]["port"], f"deploy/nginx/compose.conf: {host}:{port}"


# ---- deploy/k8s
def _k8s_containers() -> List[Tuple[str, dict, dict, dict]]:
    """(process, container, pod template labels, workload) for the containers of our images."""
    found = []
    for _, doc in _k8s_docs():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        template = doc["spec"]["template"]
        for container in template["spec"]["containers"]:
            image = next(n for n, i in IMAGES.items() if container["image"] == i["name"])
            dockerfile = DOCKERFILES[image]
            entrypoint = container.get("command") or dockerfile.exec_form("ENTRYPOINT")
            args = container.get("args") or ([] if "command" in container else dockerfile.exec_form("CMD"))
            argv = list(entrypoint) + list(args)
            process = _process_of(argv)
            where = f"deploy/k8s {doc['kind']}/{doc['metadata']['name']}"
            assert process, f"{where} runs {argv}: no process of deploy/topology.yml"
            assert PROCESSES[process]["image"] == image
            _check_argv(argv, process, where)
            found.append((process, container, template["metadata"]["labels"], doc))
    return found


def test_k8s_runs_the_topology():
    docs = _k8s_docs()
    config = next(d for _, d in docs if d["kind"] == "ConfigMap")
    secret = next(d for _, d in docs if d["kind"] == "Secret")
    sources = {
        ("configMapRef", config["metadata"]["name"]): set(config["data"]),
        ("secretRef", secret["metadata"]["name"]): set(secret["stringData"]),
    }
    containers = _k8s_containers()
    assert {process for process, *_ in containers} == set(PROCESSES)
    for process, container, _, doc in containers:
        where = f"deploy/k8s {doc['kind']}/{doc['metadata']['name']}"
        names = set()
        for item in container.get("env", []):
            names.add(item["name"])
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in sources[("secretRef", ref["name"])], f"{where}: no key {ref['key']} in the secret"
        for source in container.get("envFrom", []):
            ((kind, ref),) = source.items()
            names |= sources[(kind, ref["name"])]
        _check_env(names, process, where)
        if "port" not in PROCESSES[process]:
            continue
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": PROCESSES[process]["port"]}, f"{where}: container ports {ports}"
        probes = [k for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container]
        assert "readinessProbe" in probes and "livenessProbe" in probes, f"{where}: probes {probes}"
        for kind in probes:
            probe = container[kind]
            if "httpGet" in probe:
                port = ports.get(probe["httpGet"]["port"], probe["httpGet"]["port"])
                _check_url(f"http://127.0.0.1:{port}{probe['httpGet']['path']}", process, f"{where} {kind}")
            else:
                _check_url(" ".join(probe["exec"]["command"]), process, f"{where} {kind}")


def test_k8s_services_and_policies_use_the_topology_ports():
    docs = [d for _, d in _k8s_docs()]
    labels = {process: container_labels for process, _, container_labels, doc in _k8s_containers() if doc["kind"] == "Deployment"}
    service_port = {}
    for doc in docs:
        if doc["kind"] == "Service":
            process = next(p for p, lab in labels.items() if doc["spec"]["selector"].items() <= lab.items())
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in ("http", PROCESSES[process]["port"])
                assert port["port"] == PROCESSES[process]["port"], f"Service/{doc['metadata']['name']} port {port['port']}"
            service_port[doc["metadata"]["name"]] = (process, doc["spec"]["ports"][0]["port"])
        if doc["kind"] == "NetworkPolicy" and doc["spec"]["podSelector"]:
            process = next(p for p, lab in labels.items() if doc["spec"]["podSelector"]["matchLabels"].items() <= lab.items())
            for rule in doc["spec"].get("ingress", []):
                assert [p["port"] for p in rule["ports"]] == [PROCESSES[process]["port"]], (
                    f"NetworkPolicy/{doc['metadata']['name']}"
                )
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    match = re.fullmatch(r"http://([\w-]+):(\d+)/webhook", config["data"]["ACTION_SERVER_URL"])
    assert match, config["data"]["ACTION_SERVER_URL"]
    assert service_port[match.group(1)] == ("actions", int(match.group(2)))
