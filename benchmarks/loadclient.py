"""The load generator's HTTP client: one keep-alive connection per virtual annotator on `http.client`, with
a cookie jar of name=value pairs; nothing more than a benchmark on loopback needs.

Why not httpx: the client shares the machine's two cores with the servers it measures. httpx spends
several times the CPU of `http.client` per request (its request/response models, header normalisation,
cookie policy), and with 20 client threads in one interpreter a thread whose response has arrived waits
for the GIL before it can stop its timer, so a heavier client adds its own queueing to every latency
it reports. Both systems of a run (ours and Potato) are measured with this same client.
"""
from __future__ import annotations

import http.client
import json as jsonlib
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit


class ClientError(Exception):
    """The request could not be sent or its answer not read (connection refused, reset, timed out)."""


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    text: str


class KeepAliveClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                data: dict[str, str] | None = None, json: object = None,
                headers: dict[str, str] | None = None) -> Response:
        path = f"{url}?{urlencode(params)}" if params else url
        sent = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        body = None
        if data is not None:
            body, sent["Content-Type"] = urlencode(data).encode(), "application/x-www-form-urlencoded"
        elif json is not None:
            body, sent["Content-Type"] = jsonlib.dumps(json).encode(), "application/json"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        # A keep-alive connection the server closed while idle fails on first use; one fresh connection then.
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=sent)
                answer = self.conn.getresponse()
                content = answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if reused and attempt == 0:
                    continue
                raise ClientError(repr(exc)) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ClientError(repr(exc)) from exc
            break
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value, _, attributes = rest.partition(";")
            if "max-age=0" in attributes.lower().replace(" ", "") or "expires=thu, 01 jan 1970" in attributes.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value.strip()
        if answer.will_close:
            self.close()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, content.decode("utf-8", "replace"))

    def get(self, url: str, **kwargs: object) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def status_of(base_url: str, path: str, timeout: float = 2.0) -> int | None:
    """The status a fresh connection gets for GET `path`; None while nothing answers (a server starting)."""
    client = KeepAliveClient(base_url, timeout=timeout)
    try:
        return client.get(path).status_code
    except ClientError:
        return None
    finally:
        client.close()
