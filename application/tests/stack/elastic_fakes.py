"""Scripted fakes of Elasticsearch and Kibana for the setup scripts, on 127.0.0.1 only.

Each fake replays the start-up sequence its product is documented to go through and keeps the
state the setup scripts write (users, roles, saved objects), so a test can run the real
`setup/*.sh` against it and look at what they left behind:

- Elasticsearch (docker-elk #852, #680, #1109): nothing listening (connection refused), then 503
  "state not recovered", then 401 even for the right elastic password while `.security`
  recovers, then the built-in users are listed only partially, then normal answers.
- Kibana (/api/status): 503 while unavailable, then 200 "degraded", then 200 "available".

A fake can also answer chosen writes with a 5xx a given number of times (`fail_writes`), or
always with a 400 (`reject`).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOT_RECOVERED = {
    "error": {
        "type": "cluster_block_exception",
        "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
    },
    "status": 503,
}
UNAUTHENTICATED = {
    "error": {"type": "security_exception", "reason": "unable to authenticate user [elastic]"},
    "status": 401,
}
BUILTIN_USERS = ("elastic", "kibana_system", "logstash_system", "beats_system")


@dataclass
class Call:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]  # names in lower case


class Fake:
    """One scripted HTTP server; subclasses answer in `route`. Not listening until `start()`."""

    def __init__(
        self, password: str, fail_writes: dict[str, int] | None = None, reject: set[str] | None = None
    ) -> None:
        self.password = password
        self.fail_writes = Counter(fail_writes or {})
        self.reject = reject or set()
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        with socket.socket() as probe:  # a free port, so scripts can be pointed here before start()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.server:
            return
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.server.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def authenticated(self, headers: dict[str, str]) -> bool:
        expected = base64.b64encode(f"elastic:{self.password}".encode()).decode()
        return headers.get("authorization") == f"Basic {expected}"

    def answer(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            self.calls.append(call)
            key = f"{call.method} {call.path.split('?')[0]}"
            if self.fail_writes[key] > 0:
                self.fail_writes[key] -= 1
                return 503, {"error": {"type": "unavailable_shards_exception"}, "status": 503}
            if key in self.reject:
                return 400, {"error": {"type": "illegal_argument_exception"}, "status": 400}
            return self.route(call)

    def route(self, call: Call) -> tuple[int, Any]:
        raise NotImplementedError


class FakeElasticsearch(Fake):
    """Elasticsearch's security and health APIs as the setup job uses them."""

    def __init__(
        self,
        password: str,
        *,
        not_recovered: int = 0,
        security_recovering: int = 0,
        users_unlisted: int = 0,
        fail_writes: dict[str, int] | None = None,
        reject: set[str] | None = None,
    ) -> None:
        super().__init__(password, fail_writes, reject)
        self.not_recovered = not_recovered
        self.security_recovering = security_recovering
        self.users_unlisted = users_unlisted
        self.roles: dict[str, Any] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.builtin_passwords: dict[str, str] = {}

    def route(self, call: Call) -> tuple[int, Any]:
        if self.not_recovered > 0:
            self.not_recovered -= 1
            return 503, NOT_RECOVERED
        if self.security_recovering > 0 or not self.authenticated(call.headers):
            self.security_recovering = max(0, self.security_recovering - 1)
            return 401, UNAUTHENTICATED
        path = call.path.split("?")[0]
        parts = path.strip("/").split("/")
        if (call.method, path) == ("GET", "/_cluster/health"):
            return 200, {"cluster_name": "tagwatch", "status": "yellow", "timed_out": False}
        if (call.method, path) == ("GET", "/_security/user"):
            return 200, self.user_listing()
        if call.method == "POST" and parts[:2] == ["_security", "user"] and parts[3:] == ["_password"]:
            self.builtin_passwords[parts[2]] = json.loads(call.body)["password"]
            return 200, {}
        if call.method == "PUT" and parts[:2] == ["_security", "role"] and len(parts) == 3:
            created = parts[2] not in self.roles
            self.roles[parts[2]] = json.loads(call.body)
            return 200, {"role": {"created": created}}
        if call.method == "PUT" and parts[:2] == ["_security", "user"] and len(parts) == 3:
            created = parts[2] not in self.users
            self.users[parts[2]] = json.loads(call.body)
            return 200, {"created": created}
        return 404, {"error": {"type": "not_found"}, "status": 404}

    def user_listing(self) -> dict[str, Any]:
        if self.users_unlisted > 0:
            self.users_unlisted -= 1
            return {"elastic": {"username": "elastic", "metadata": {"_reserved": True}}}
        listing = {name: {"username": name, "metadata": {"_reserved": True}} for name in BUILTIN_USERS}
        return listing | {
            name: {"username": name, "roles": user["roles"]} for name, user in self.users.items()
        }


class FakeKibana(Fake):
    """Kibana's status and saved-objects APIs as the setup job uses them."""

    def __init__(
        self,
        password: str,
        *,
        levels: list[str] | None = None,
        then: str = "available",
        import_errors: bool = False,
        fail_writes: dict[str, int] | None = None,
    ) -> None:
        super().__init__(password, fail_writes)
        self.levels = list(levels or [])
        self.then = then
        self.import_errors = import_errors
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.imported_while: list[str] = []

    def level(self) -> str:
        return self.levels[0] if self.levels else self.then

    def route(self, call: Call) -> tuple[int, Any]:
        if not self.authenticated(call.headers):
            return 401, {"statusCode": 401, "error": "Unauthorized"}
        path = call.path.split("?")[0]
        if path == "/api/status":
            level = self.levels.pop(0) if self.levels else self.then
            status = 200 if level in ("available", "degraded") else 503
            return status, {"status": {"overall": {"level": level, "summary": f"Kibana is {level}"}}}
        if self.level() not in ("available", "degraded"):
            return 503, {"statusCode": 503, "error": "Service Unavailable"}
        if (call.method, path) == ("GET", "/api/saved_objects/_find"):
            return 200, {"page": 1, "per_page": 1, "total": 0, "saved_objects": []}
        if (call.method, path) == ("POST", "/api/saved_objects/_import"):
            return self.import_objects(call)
        return 404, {"statusCode": 404, "error": "Not Found"}

    def import_objects(self, call: Call) -> tuple[int, Any]:
        if "overwrite=true" not in call.path or "kbn-xsrf" not in call.headers:
            return 400, {"statusCode": 400, "error": "Bad Request"}
        objects = [json.loads(line) for line in multipart_file(call).splitlines() if line.strip()]
        if self.import_errors:
            return 200, {"success": False, "successCount": 0, "errors": [{"id": objects[0]["id"]}]}
        self.imported_while.append(self.level())
        for obj in objects:
            self.objects[obj["type"], obj["id"]] = obj
        return 200, {"success": True, "successCount": len(objects)}


def multipart_file(call: Call) -> bytes:
    """The content of the one file part of a multipart/form-data body."""
    boundary = call.headers["content-type"].split("boundary=")[1].strip('"').encode()
    (part,) = [p for p in call.body.split(b"--" + boundary) if b'name="file"' in p]
    return part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        call = Call(self.command, self.path, body, {k.lower(): v for k, v in self.headers.items()})
        status, payload = self.server.fake.answer(call)  # type: ignore[attr-defined]
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve
