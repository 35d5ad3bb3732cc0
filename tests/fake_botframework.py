"""Local stand-ins for Microsoft's Bot Framework services, as real HTTP servers on 127.0.0.1.

* ``FakeOpenId``: the OpenID metadata document and its JWKS (test RSA keys generated at start), plus
  ``sign()`` to make the JWTs the Bot Framework puts on every activity it sends to a bot. ``down()``
  makes it drop every connection (as an unreachable host would), ``up()`` brings it back.
* ``FakeTokenService``: the client-credentials token endpoint (``login.microsoftonline.com``).
* ``FakeConnector``: the Bot Connector API (the activity's ``serviceUrl``), recording what the bot posts
  to ``/v3/conversations/<id>/activities`` and checking the bearer token the token service issued.
  Every posted activity is read with Microsoft's Bot Framework schema (``botbuilder-schema``:
  :func:`activity_model`, :func:`hero_card`): a field the schema does not know, or of the wrong case or
  type, does not survive ``Activity.deserialize(...).serialize()`` and is kept in ``schema_problems``
  (the connector itself ignores unknown fields, so the post is still answered 201; tests assert the
  list stays empty); ``typed()`` gives the posts as ``Activity`` objects.

* ``FakeConnector`` also serves attachment bytes (``add_attachment()``) at
  ``/<region>/v3/attachments/<id>/views/original`` to the same bearer tokens, like Teams' own attachments.
* ``FakeFileHost``: another host (a file link, e.g. SharePoint's ``downloadUrl``) serving files with no
  authentication; it records every request's ``Authorization`` header, so tests can check that the
  connector token never goes there.

Each runs a stdlib ``ThreadingHTTPServer`` in a daemon thread; use them as context managers.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from botbuilder.schema import (
    ActionTypes,
    Activity,
    ActivityTypes,
    Attachment,
    AttachmentLayoutTypes,
    ConversationAccount,
    Entity,
    HeroCard,
    Mention,
    TextFormatTypes,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

BOTFRAMEWORK_ISSUER = "https://api.botframework.com"
CONNECTOR_SCOPE = "https://api.botframework.com/.default"


HERO_CARD = "application/vnd.microsoft.card.hero"

#: Where botbuilder-schema (Python, 4.17.1) differs from the Activity spec (and from the .NET / JS
#: schemas, and what Teams sends): its ``ConversationAccount`` maps ``tenant_id`` to the key
#: ``tenantID``; the spec names it ``tenantId``. The spec's key is the one accepted (and read into
#: ``conversation.tenant_id``); the Python schema's spelling is refused.
SPEC_TENANT_KEY, SCHEMA_TENANT_KEY = "tenantId", ConversationAccount._attribute_map["tenant_id"]["key"]


def _spec_conversation(raw: Dict[str, Any]) -> Dict[str, Any]:
    """``raw`` without the spec's ``conversation.tenantId`` (the schema would drop it; set back after)."""
    conversation = raw.get("conversation")
    if isinstance(conversation, dict) and SCHEMA_TENANT_KEY != SPEC_TENANT_KEY and SCHEMA_TENANT_KEY in conversation:
        raise ValueError(f"conversation.{SCHEMA_TENANT_KEY}: the Activity spec (and Teams) name it {SPEC_TENANT_KEY}")
    if isinstance(conversation, dict) and SPEC_TENANT_KEY in conversation:
        raw = {**raw, "conversation": {k: v for k, v in conversation.items() if k != SPEC_TENANT_KEY}}
    return raw


def activity_model(raw: Any) -> Activity:
    """``raw`` (the JSON of an activity) as botbuilder-schema's ``Activity``; ValueError (why) when the
    schema does not read it back as it was: an unknown field, a wrong case (``ReplyToId``), a wrong type
    (a number where a string goes), or a value outside the schema's enums (type, textFormat,
    attachmentLayout, card action types). Hero-card attachments are checked as ``HeroCard`` too, and
    entities by their own class (``Mention``)."""
    if not isinstance(raw, dict):
        raise ValueError(f"not a JSON object: {raw!r}")
    stripped = _spec_conversation(raw)
    entities = stripped.get("entities")
    if entities is not None:  # the schema's Entity knows only "type": each is read by its own class
        stripped = {k: v for k, v in stripped.items() if k != "entities"}
    try:
        model = Activity.deserialize(stripped)
    except Exception as error:  # msrest's DeserializationError
        raise ValueError(f"botbuilder-schema cannot read the activity: {error}") from None
    back = model.serialize()
    if back != stripped:
        raise ValueError(f"the activity does not round-trip through botbuilder-schema: {_diff(stripped, back)}")
    if isinstance(raw.get("conversation"), dict) and SPEC_TENANT_KEY in raw["conversation"]:
        model.conversation.tenant_id = raw["conversation"][SPEC_TENANT_KEY]
    if entities is not None:
        model.entities = _entities(entities)
    if model.type not in {t.value for t in ActivityTypes}:
        raise ValueError(f"unknown activity type {model.type!r}")
    if model.text_format is not None and model.text_format not in {t.value for t in TextFormatTypes}:
        raise ValueError(f"textFormat {model.text_format!r} is not one of the schema's")
    if model.attachment_layout is not None and model.attachment_layout not in {t.value for t in AttachmentLayoutTypes}:
        raise ValueError(f"attachmentLayout {model.attachment_layout!r} is not one of the schema's")
    for attachment in model.attachments or []:
        if attachment.content_type == HERO_CARD:
            hero_card(attachment)
    return model


def _entities(raw: Any) -> List[Entity]:
    """An activity's entities: a ``mention`` as the schema's ``Mention`` (round-tripped); any other type,
    whose fields the spec leaves open beside ``type``, must at least have a string ``type``."""
    if not isinstance(raw, list):
        raise ValueError(f"entities is not a list: {raw!r}")
    models: List[Entity] = []
    for i, entity in enumerate(raw):
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str):
            raise ValueError(f"entities[{i}] has no type: {entity!r}")
        if entity["type"] == "mention":
            mention = Mention.deserialize(entity)
            if mention.serialize() != entity:
                raise ValueError(f"entities[{i}] does not round-trip as a Mention: {_diff(entity, mention.serialize())}")
            models.append(mention)
        else:
            models.append(Entity(type=entity["type"]))
    return models


def hero_card(attachment: Attachment) -> HeroCard:
    """A hero-card attachment's content as botbuilder-schema's ``HeroCard`` (round-tripped, card action
    types checked); ValueError otherwise."""
    if attachment.content_type != HERO_CARD or not isinstance(attachment.content, dict):
        raise ValueError(f"not a hero card: {attachment.content_type!r}")
    card = HeroCard.deserialize(attachment.content)
    back = card.serialize()
    if back != attachment.content:
        raise ValueError(f"the hero card does not round-trip through botbuilder-schema: {_diff(attachment.content, back)}")
    for action in list(card.buttons or []) + ([card.tap] if card.tap else []):
        if action.type not in {t.value for t in ActionTypes}:
            raise ValueError(f"card action type {action.type!r} is not one of the schema's")
    return card


def _diff(sent: Any, read: Any, path: str = "") -> str:
    """Where ``read`` (what the schema made of it) differs from ``sent``."""
    if isinstance(sent, dict) and isinstance(read, dict):
        for key in sorted(set(sent) | set(read)):
            if key not in read:
                return f"{path}.{key} ({sent[key]!r}) unknown to the schema"
            if key not in sent:
                return f"{path}.{key} added by the schema"
            if sent[key] != read[key]:
                return _diff(sent[key], read[key], f"{path}.{key}")
    if isinstance(sent, list) and isinstance(read, list) and len(sent) == len(read):
        for i, (a, b) in enumerate(zip(sent, read)):
            if a != b:
                return _diff(a, b, f"{path}[{i}]")
    return f"{path or 'value'}: sent {sent!r}, the schema reads {read!r}"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str, endorsements: Optional[List[str]] = None) -> Dict[str, Any]:
    jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    if endorsements is not None:
        jwk["endorsements"] = endorsements
    return jwk


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.owner.handle(self, "GET", b"")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.owner.handle(self, "POST", self._body())  # type: ignore[attr-defined]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # dropped connections are on purpose
        pass


class _FakeServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "_FakeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def handle(self, h: _Handler, method: str, body: bytes) -> None:  # pragma: no cover - overridden
        h._json(404, {"error": "not found"})


class FakeOpenId(_FakeServer):
    """``GET /v1/.well-known/openidconfiguration`` and ``GET /v1/.well-known/keys``."""

    METADATA_PATH = "/v1/.well-known/openidconfiguration"
    KEYS_PATH = "/v1/.well-known/keys"

    def __init__(self, endorsements: Optional[List[str]] = None) -> None:
        super().__init__()
        self.endorsements = endorsements if endorsements is not None else ["msteams", "emulator", "webchat"]
        self.key = new_rsa_key()
        self.kid = "test-key-1"
        self.keys: Dict[str, rsa.RSAPrivateKey] = {self.kid: self.key}
        self.available = True
        self.hits: Dict[str, int] = {self.METADATA_PATH: 0, self.KEYS_PATH: 0}

    @property
    def metadata_url(self) -> str:
        return self.base_url + self.METADATA_PATH

    def down(self) -> None:
        self.available = False

    def up(self) -> None:
        self.available = True

    def add_key(self, kid: str) -> rsa.RSAPrivateKey:
        """Publishes a new signing key (a key rotation)."""
        key = new_rsa_key()
        with self.lock:
            self.keys[kid] = key
        return key

    def handle(self, h: _Handler, method: str, body: bytes) -> None:
        path = urlsplit(h.path).path
        with self.lock:
            if path in self.hits:
                self.hits[path] += 1
            available = self.available
            jwks = {"keys": [public_jwk(k, kid, self.endorsements) for kid, k in self.keys.items()]}
        if not available:  # an unreachable host: the connection drops without an answer
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        if method == "GET" and path == self.METADATA_PATH:
            h._json(
                200,
                {
                    "issuer": BOTFRAMEWORK_ISSUER,
                    "authorization_endpoint": "https://invalid.botframework.com",
                    "jwks_uri": self.base_url + self.KEYS_PATH,
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                },
            )
        elif method == "GET" and path == self.KEYS_PATH:
            h._json(200, jwks)
        else:
            h._json(404, {"error": "not found"})

    def sign(
        self,
        app_id: str,
        service_url: Optional[str],
        *,
        key: Optional[rsa.RSAPrivateKey] = None,
        kid: Optional[str] = None,
        issuer: str = BOTFRAMEWORK_ISSUER,
        audience: Optional[str] = None,
        expires_in: int = 600,
        extra: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, Any]] = None,
        algorithm: str = "RS256",
    ) -> str:
        """A Bot Framework channel token for ``app_id`` (override anything to make a bad one)."""
        now = int(time.time())
        claims: Dict[str, Any] = {
            "iss": issuer,
            "aud": audience if audience is not None else app_id,
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + expires_in,
        }
        if service_url is not None:
            claims["serviceurl"] = service_url
        claims.update(extra or {})
        kid = kid if kid is not None else self.kid
        key = key if key is not None else self.keys.get(kid, self.key)
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})


class FakeTokenService(_FakeServer):
    """``POST /<tenant>/oauth2/v2.0/token`` (client credentials) -> a bearer token for the connector."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.issued: List[str] = []
        self.requests: List[Dict[str, Any]] = []
        self.failing = False

    def token_url(self, tenant: str = "botframework.com") -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    def handle(self, h: _Handler, method: str, body: bytes) -> None:
        path = urlsplit(h.path).path
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        with self.lock:
            self.requests.append({"path": path, **{k: v for k, v in form.items() if k != "client_secret"}})
            failing = self.failing
        if method != "POST" or not path.endswith("/oauth2/v2.0/token"):
            return h._json(404, {"error": "not_found"})
        if failing:
            return h._json(503, {"error": "temporarily_unavailable"})
        if form.get("grant_type") != "client_credentials" or form.get("scope") != CONNECTOR_SCOPE:
            return h._json(400, {"error": "invalid_request"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return h._json(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."})
        token = "fake-access-" + secrets.token_urlsafe(16)
        with self.lock:
            self.issued.append(token)
        h._json(200, {"access_token": token, "expires_in": 3600, "ext_expires_in": 3600, "token_type": "Bearer"})

    def token_requests(self) -> List[Dict[str, Any]]:
        with self.lock:
            return list(self.requests)


class FakeConnector(_FakeServer):
    """The Bot Connector API at an activity's ``serviceUrl``: records the activities the bot posts."""

    def __init__(self, tokens: FakeTokenService) -> None:
        super().__init__()
        self.tokens = tokens
        self.revoked: set = set()
        self.posts: List[Dict[str, Any]] = []
        self.rejected: List[Dict[str, Any]] = []
        self.attachments: Dict[str, bytes] = {}
        self.attachment_gets: List[Dict[str, Any]] = []
        self.schema_problems: List[Dict[str, Any]] = []  # {"conversation_id", "why", "activity"}

    def add_attachment(self, content: bytes, region: str = "amer") -> str:
        """Serves ``content`` to valid bearer tokens; its URL (on this host, the serviceUrl's)."""
        attachment_id = "att-" + uuid.uuid4().hex[:12]
        with self.lock:
            self.attachments[attachment_id] = content
        return f"{self.base_url}/{region}/v3/attachments/{attachment_id}/views/original"

    def _serve_attachment(self, h: _Handler, tail: List[str]) -> None:
        auth = h.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self.lock:
            valid = token in self.tokens.issued and token not in self.revoked
            content = self.attachments.get(tail[2])
            self.attachment_gets.append({"id": tail[2], "authorized": valid})
        if not valid:
            return h._json(401, {"error": {"code": "Unauthorized", "message": "Authorization has been denied"}})
        if content is None:
            return h._json(404, {"error": {"code": "NotFound"}})
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(content)))
        h.end_headers()
        try:
            h.wfile.write(content)
        except OSError:
            pass

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), as after a secret rotation."""
        with self.lock:
            self.revoked.update(self.tokens.issued)

    def handle(self, h: _Handler, method: str, body: bytes) -> None:
        raw_path = urlsplit(h.path).path
        # [/<region>]/v3/conversations/<quoted id>/activities[/<reply-to id>]
        parts = raw_path.split("/")
        start = parts.index("v3") if "v3" in parts else -1
        tail = parts[start:] if start >= 0 else []
        if method == "GET" and len(tail) >= 3 and tail[1] == "attachments":
            return self._serve_attachment(h, tail)
        if method != "POST" or len(tail) < 4 or tail[1] != "conversations" or tail[3] != "activities":
            return h._json(404, {"error": "not found"})
        conversation_id = unquote(tail[2])
        auth = h.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self.lock:
            valid = token in self.tokens.issued and token not in self.revoked
        try:
            activity = json.loads(body or b"null")
        except ValueError:
            activity = None
        record = {"conversation_id": conversation_id, "path": raw_path, "activity": activity, "time": time.time()}
        if not valid:
            with self.lock:
                self.rejected.append(record)
            return h._json(401, {"error": {"code": "Unauthorized", "message": "Authorization has been denied"}})
        if not isinstance(activity, dict):
            return h._json(400, {"error": {"code": "BadArgument", "message": "Invalid activity"}})
        try:
            activity_model(activity)
        except ValueError as why:
            with self.lock:
                self.schema_problems.append({"conversation_id": conversation_id, "why": str(why), "activity": activity})
        activity_id = "reply-" + uuid.uuid4().hex[:12]
        record["id"] = activity_id
        with self.lock:
            self.posts.append(record)
        h._json(201, {"id": activity_id})

    def activities(self, conversation_id: Optional[str] = None) -> List[Dict[str, Any]]:
        with self.lock:
            return [p["activity"] for p in self.posts if conversation_id is None or p["conversation_id"] == conversation_id]

    def typed(self, conversation_id: Optional[str] = None) -> List[Activity]:
        """The posted activities as botbuilder-schema ``Activity`` objects (:func:`activity_model`)."""
        return [activity_model(a) for a in self.activities(conversation_id)]

    def wait_for(
        self, conversation_id: str, predicate: Callable[[List[Dict[str, Any]]], bool], timeout: float = 15.0
    ) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            activities = self.activities(conversation_id)
            if predicate(activities):
                return activities
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met for {conversation_id}; posted: {json.dumps(activities)[:3000]}")
            time.sleep(0.05)


class FakeFileHost(_FakeServer):
    """Files at ``/files/<id>/<name>`` with no authentication (a file link outside the connector).
    ``chunked=True`` files are sent without a Content-Length (so only a streaming cap can stop them)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: Dict[str, Any] = {}
        self.requests: List[Dict[str, Any]] = []

    def add(self, name: str, content: bytes, chunked: bool = False) -> str:
        file_id = uuid.uuid4().hex[:12]
        with self.lock:
            self.files[file_id] = (content, chunked)
        return f"{self.base_url}/files/{file_id}/{name}"

    def requests_for(self, url: str) -> List[Dict[str, Any]]:
        path = urlsplit(url).path
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def handle(self, h: _Handler, method: str, body: bytes) -> None:
        path = urlsplit(h.path).path
        parts = path.split("/")
        with self.lock:
            self.requests.append({"path": path, "method": method, "authorization": h.headers.get("Authorization")})
            item = self.files.get(parts[2]) if len(parts) > 2 and parts[1] == "files" else None
        if method != "GET" or item is None:
            return h._json(404, {"error": "not found"})
        content, chunked = item
        h.send_response(200)
        h.send_header("Content-Type", "text/csv")
        try:
            if chunked:
                h.send_header("Transfer-Encoding", "chunked")
                h.end_headers()
                for i in range(0, len(content), 64 * 1024):
                    piece = content[i : i + 64 * 1024]
                    h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                h.wfile.write(b"0\r\n\r\n")
            else:
                h.send_header("Content-Length", str(len(content)))
                h.end_headers()
                h.wfile.write(content)
        except OSError:  # the bot stopped reading (size cap)
            h.close_connection = True
