"""Config: the seed's JSON configuration, parsed and validated.

Field names are the C library's (``boostrap_timeout`` spelled as it was;
``bootstrap_timeout`` is accepted too). Every problem raises ConfigError
naming the field; unknown keys only warn, so configs written for newer
versions still load.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from easyraft.errors import ConfigError

logger = logging.getLogger("easyraft.config")

_U64_MAX = (1 << 64) - 1


@dataclasses.dataclass(frozen=True)
class Peer:
    id: int
    url: str


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated server configuration (see the README for each field)."""

    id: int
    peers: tuple[Peer, ...]
    cluster_id: int = 0
    waldir: str = ""
    snapdir: str = ""
    snap_count: int = 10000
    tickms: int = 100
    election_tick: int = 10
    heartbeat_tick: int = 1
    boostrap_timeout: float = 1.0
    join: bool = False
    max_size_per_msg: int = 1024 * 1024
    max_inflight_msgs: int = 256
    snapshot_entries: int = 1000
    manual_snap: bool = False
    max_snap_files: int = 5
    max_wal_files: int = 5
    purge_file_interval: float = 30.0
    pre_vote: bool = True
    check_quorum: bool = True
    fsync: bool = True
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None

    # --- construction --------------------------------------------------

    @classmethod
    def load(cls, source: Config | Mapping[str, Any] | str | bytes | os.PathLike[str],
             *, check_dirs: bool = True) -> Config:
        """Build a Config from a Config, a dict, JSON text or a JSON file path."""
        if isinstance(source, Config):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source, check_dirs=check_dirs)
        if isinstance(source, bytes):
            source = source.decode("utf-8", errors="replace")
        if isinstance(source, str) and source.lstrip().startswith("{"):
            return cls.from_json(source, check_dirs=check_dirs)
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise ConfigError("<file>", f"cannot read {path!r}: {e.strerror or e}") from None
            return cls.from_json(text, check_dirs=check_dirs)
        raise ConfigError("<config>", f"expected a dict, JSON text or a path, "
                                      f"got {type(source).__name__}")

    @classmethod
    def from_json(cls, text: str, *, check_dirs: bool = True) -> Config:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError("<json>", f"invalid JSON at line {e.lineno} column {e.colno}: "
                                        f"{e.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError("<json>", f"top level must be an object, got {type(data).__name__}")
        return cls.from_dict(data, check_dirs=check_dirs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, check_dirs: bool = True) -> Config:
        data = dict(data)
        if "bootstrap_timeout" in data:
            if "boostrap_timeout" in data and data["boostrap_timeout"] != data["bootstrap_timeout"]:
                raise ConfigError("bootstrap_timeout",
                                  "both boostrap_timeout and bootstrap_timeout given, with "
                                  "different values")
            data["boostrap_timeout"] = data.pop("bootstrap_timeout")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in sorted(set(data) - known):
            logger.warning("config: unknown key %r ignored", key)
        kw: dict[str, Any] = {}
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}

        kw["id"] = _node_id(data.get("id"), "id")
        kw["peers"] = _peers(data.get("peers"))
        kw["cluster_id"] = _uint(data.get("cluster_id", 0), "cluster_id", minimum=0)
        for name in ("snap_count", "snapshot_entries", "max_snap_files", "max_wal_files"):
            kw[name] = _uint(data.get(name, defaults[name]), name, minimum=0)
        for name in ("tickms", "election_tick", "heartbeat_tick", "max_inflight_msgs",
                     "max_size_per_msg"):
            kw[name] = _uint(data.get(name, defaults[name]), name, minimum=1)
        for name in ("boostrap_timeout", "purge_file_interval"):
            kw[name] = _number(data.get(name, defaults[name]), name)
        for name in ("join", "manual_snap", "pre_vote", "check_quorum", "fsync"):
            kw[name] = _bool(data.get(name, defaults[name]), name)
        for name in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(name, "must be a non-empty string path")
            kw[name] = value
        for name in ("waldir", "snapdir"):
            value = data.get(name)
            if value is None:
                raise ConfigError(name, "is required")
            if not isinstance(value, str) or not value:
                raise ConfigError(name, "must be a non-empty string path")
            kw[name] = value

        cfg = cls(**kw)
        cfg._validate(check_dirs=check_dirs)
        return cfg

    # --- validation ----------------------------------------------------

    def _validate(self, *, check_dirs: bool) -> None:
        if self.heartbeat_tick >= self.election_tick:
            raise ConfigError("heartbeat_tick", f"must be less than election_tick "
                                                f"({self.heartbeat_tick} >= {self.election_tick})")
        if self.id not in {p.id for p in self.peers}:
            raise ConfigError("id", f"node {self.id} is not in peers (peers must list every "
                                    f"member, this node included, also when joining)")
        if self.waldir == self.snapdir:
            raise ConfigError("snapdir", "must differ from waldir")
        tls_given = [self.tls_cert_file, self.tls_key_file]
        if any(tls_given) and not all(tls_given):
            raise ConfigError("tls_key_file" if self.tls_cert_file else "tls_cert_file",
                              "tls_cert_file and tls_key_file go together")
        uses_https = any(p.url.startswith("https://") for p in self.peers)
        if uses_https and not self.tls_cert_file and not self.tls_ca_file:
            raise ConfigError("peers", "https:// peer URLs need tls_cert_file/tls_key_file "
                                       "or tls_ca_file")
        if check_dirs:
            for name in ("waldir", "snapdir"):
                _check_dir(getattr(self, name), name)
            for name in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
                path = getattr(self, name)
                if path is not None and not os.path.isfile(path):
                    raise ConfigError(name, f"file {path!r} does not exist")

    # --- derived -------------------------------------------------------

    @property
    def url(self) -> str:
        """This node's own peer URL."""
        return self.peer_urls[self.id]

    @property
    def peer_urls(self) -> dict[int, str]:
        return {p.id: p.url for p in self.peers}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["peers"] = [{"id": p.id, "url": p.url} for p in self.peers]
        return d


def _node_id(value: Any, field: str) -> int:
    if value is None:
        raise ConfigError(field, "is required")
    n = _uint(value, field, minimum=0)
    if n == 0:
        raise ConfigError(field, "must be non-zero (0 means 'none' in raft)")
    return n


def _uint(value: Any, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(field, f"must be >= {minimum}, got {value}")
    if value > _U64_MAX:
        raise ConfigError(field, f"must fit in 64 bits, got {value}")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a number, got {value!r}")
    if value < 0 or value != value:
        raise ConfigError(field, f"must be >= 0, got {value}")
    return float(value)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, got {value!r}")
    return value


def validate_url(url: Any, field: str = "url") -> str:
    """Check a peer URL: http(s)://host:port with nothing else."""
    if not isinstance(url, str) or not url:
        raise ConfigError(field, f"must be a non-empty URL string, got {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(field, f"invalid URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(field, f"URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigError(field, f"URL {url!r} has no host")
    if port is None or port == 0:
        raise ConfigError(field, f"URL {url!r} needs an explicit non-zero port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(field, f"URL {url!r} must be scheme://host:port only")
    return url


def _peers(value: Any) -> tuple[Peer, ...]:
    if value is None:
        raise ConfigError("peers", "is required")
    if not isinstance(value, list) or not value:
        raise ConfigError("peers", "must be a non-empty list of {id, url}")
    peers = []
    ids: set[int] = set()
    urls: dict[str, int] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"peers[{i}]", f"must be an object with id and url, got {item!r}")
        pid = _node_id(item.get("id"), f"peers[{i}].id")
        url = validate_url(item.get("url"), f"peers[{i}].url")
        if pid in ids:
            raise ConfigError(f"peers[{i}].id", f"duplicate peer id {pid}")
        # Several clusters may share a URL, but not two members of one cluster.
        if url in urls:
            raise ConfigError(f"peers[{i}].url", f"URL {url} is also used by peer {urls[url]}")
        ids.add(pid)
        urls[url] = pid
        peers.append(Peer(pid, url))
    return tuple(peers)


def _check_dir(path: str, field: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(field, f"cannot create directory {path!r}: {e.strerror or e}") from None
    if not os.path.isdir(path):
        raise ConfigError(field, f"{path!r} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(field, f"directory {path!r} is not writable")
