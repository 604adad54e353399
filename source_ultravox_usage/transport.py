"""The HTTP transport under every Ultravox request: it keeps the API key on the API host and lets
the daily and hourly streams, which ask the same question for the same window, share one answer."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

API_KEY_HEADER = "X-API-Key"
REJECTED_KEY_STATUSES = (401, 403)
# Enough for every window of a long history held at once (one window of 30 days is ~100 KB);
# past it the oldest answers are dropped and a late stream asks the API again.
MAX_SHARED_BYTES = 64 * 1024 * 1024

# Ultravox allows 200 requests/s per key; a sync keeps to half of that, leaving the rest of the
# key's budget to its other clients, however fast the API answers.
MAX_REQUESTS_PER_SECOND = 100

Key = tuple[str, str]


@dataclass
class _Stored:
    status_code: int
    reason: str | None
    headers: CaseInsensitiveDict
    content: bytes
    encoding: str | None
    url: str
    served: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, response: requests.Response, served: set[str] | None = None) -> _Stored:
        return cls(
            status_code=response.status_code,
            reason=response.reason,
            headers=CaseInsensitiveDict(response.headers),
            content=response.content,
            encoding=response.encoding,
            url=response.url,
            served=served or set(),
        )

    def to_response(self, request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status_code
        response.reason = self.reason
        response.headers = CaseInsensitiveDict(self.headers)
        response._content = self.content
        response.encoding = self.encoding
        response.url = self.url
        response.request = request
        return response


class Pacer:
    """Spaces the starts of requests at least 1/rate seconds apart, across threads."""

    def __init__(self, rate: float = MAX_REQUESTS_PER_SECOND) -> None:
        self._interval = 1.0 / rate
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


class SharedResponses:
    """What one sync's requests share: a bounded, thread-safe store of successful answers, the
    keys Ultravox rejected, and the pacer. Each answer is handed once to each of its readers and
    dropped when all have had it; a reader asking for an answer that another is already fetching
    waits for it instead of sending the same request."""

    def __init__(self, max_bytes: int = MAX_SHARED_BYTES) -> None:
        self.pacer = Pacer()
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._stored: OrderedDict[Key, _Stored] = OrderedDict()
        self._in_flight: dict[Key, threading.Event] = {}
        self._rejections: dict[str, _Stored] = {}
        self._bytes = 0

    def fetch(
        self,
        key: Key,
        reader: str,
        readers: frozenset[str],
        request: requests.PreparedRequest,
        send: Callable[[], requests.Response],
    ) -> requests.Response:
        while True:
            with self._lock:
                stored = self._stored.get(key)
                if stored is not None and reader not in stored.served:
                    stored.served.add(reader)
                    if stored.served >= readers:
                        self._drop(key)
                    return stored.to_response(request)
                in_flight = self._in_flight.get(key)
                if in_flight is None:
                    self._in_flight[key] = threading.Event()
                    break
            in_flight.wait()
        try:
            response = send()
            if response.status_code == 200:
                self._store(key, reader, response)
            return response
        finally:
            with self._lock:
                self._in_flight.pop(key).set()

    def _store(self, key: Key, reader: str, response: requests.Response) -> None:
        stored = _Stored.of(response, served={reader})
        with self._lock:
            if key in self._stored:
                self._drop(key)
            self._stored[key] = stored
            self._bytes += len(stored.content)
            while self._bytes > self._max_bytes and self._stored:
                self._drop(next(iter(self._stored)))

    def remember_rejection(self, key_hash: str, response: requests.Response) -> None:
        stored = _Stored.of(response)
        with self._lock:
            self._rejections[key_hash] = stored

    def rejection(self, key_hash: str) -> _Stored | None:
        with self._lock:
            return self._rejections.get(key_hash)

    def _drop(self, key: Key) -> None:
        self._bytes -= len(self._stored.pop(key).content)

    def __len__(self) -> int:
        with self._lock:
            return len(self._stored)


# One store per source instance (one sync), found by the token the source puts in the manifest;
# weak values, so a store lives exactly as long as its source.
_STORES: weakref.WeakValueDictionary[str, SharedResponses] = weakref.WeakValueDictionary()


def new_store() -> tuple[str, SharedResponses]:
    token = uuid.uuid4().hex
    store = _STORES[token] = SharedResponses()
    return token, store


def store_for(token: str) -> SharedResponses:
    store = _STORES.get(token)
    return SharedResponses() if store is None else store


class UsageTransport(HTTPAdapter):
    """The last step before the wire. requests keeps custom headers such as X-API-Key across a
    redirect to another host, so the key is sent only to the API's own origin here. Streams in
    `readers` share one answer per request, and a key Ultravox rejected (401/403) is not sent
    again in the same sync: its rejection is the answer."""

    def __init__(
        self,
        api_origin: tuple[str, str],
        reader: str,
        readers: frozenset[str],
        shared: SharedResponses,
    ) -> None:
        super().__init__(pool_connections=4, pool_maxsize=10)
        self._api_origin = api_origin
        self._reader = reader
        self._readers = readers
        self._shared = shared

    def send(self, request: requests.PreparedRequest, *args, **kwargs) -> requests.Response:  # type: ignore[override]
        url = requests.utils.urlparse(request.url)
        if (url.scheme, url.netloc) != self._api_origin:
            request.headers.pop(API_KEY_HEADER, None)
        key_hash = hashlib.sha256(request.headers.get(API_KEY_HEADER, "").encode()).hexdigest()
        rejection = self._shared.rejection(key_hash)
        if rejection is not None:
            return rejection.to_response(request)

        def send() -> requests.Response:
            self._shared.pacer.wait()
            response = super(UsageTransport, self).send(request, *args, **kwargs)
            if response.status_code in REJECTED_KEY_STATUSES:
                self._shared.remember_rejection(key_hash, response)
            return response

        if request.method != "GET" or not self._readers:
            return send()
        return self._shared.fetch((str(request.url), key_hash), self._reader, self._readers, request, send)
