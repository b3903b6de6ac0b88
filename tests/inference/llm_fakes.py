"""Loopback protocol servers for the LLM tests and the throughput benchmark.

Real HTTP over 127.0.0.1 (http.server in a thread), so the real `openai` and `ollama` clients and all
of our error handling run unmodified. Each server answers from a script: queued `Reply`s first (429
then 200, a 500, a slow answer…), then its default reply. Every request body is recorded.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | str = ""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def openai_completion(content: str | None, *, prompt_tokens: int = 42, completion_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def ollama_chat(content: str, *, prompt_eval_count: int = 31, eval_count: int = 9) -> dict[str, Any]:
    return {
        "model": "fake-model", "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content}, "done": True, "done_reason": "stop",
        "total_duration": 1000, "prompt_eval_count": prompt_eval_count, "eval_count": eval_count,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The benchmark opens 64 connections at once; the default listen() backlog of 5 would drop SYNs and
    # add 1 s retransmits that have nothing to do with our code. (A class attribute: listen() runs in
    # the constructor.)
    request_queue_size = 256


class ScriptedServer:
    """Serves POST `path`; `url` is its base. Use as a context manager or call start()/stop()."""

    path = "/"

    def __init__(self, *, default: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        self.default = default
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            # Headers and body go out as two writes; with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms on Linux) — latency no real server adds.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server._send(self, Reply(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {"_raw": raw.decode("utf-8", "replace")}
                if self.path.rstrip("/") != server.path:
                    server._send(self, Reply(404, {"error": f"no route {self.path}"}))
                    return
                with server._lock:
                    server.requests.append(payload)
                    reply = server.script.popleft() if server.script else None
                if reply is None:
                    reply = server.default(payload) if callable(server.default) else server.default
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                server._send(self, reply)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        data = body.encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeOpenAIServer(ScriptedServer):
    """OpenAI-compatible `/v1/chat/completions`; the config's base_url is `url + "/v1"`."""

    path = "/v1/chat/completions"

    def __init__(self, *, default: Reply | Callable[[dict[str, Any]], Reply] | None = None) -> None:
        super().__init__(default=default or Reply(200, openai_completion('{"label": "happiness"}')))


class FakeOllamaServer(ScriptedServer):
    """Ollama's `/api/chat` (stream false): one JSON object with `message`, token counts in
    `prompt_eval_count` / `eval_count`."""

    path = "/api/chat"

    def __init__(self, *, default: Reply | Callable[[dict[str, Any]], Reply] | None = None) -> None:
        super().__init__(default=default or Reply(200, ollama_chat('{"label": "happiness"}')))
