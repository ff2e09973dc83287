import json
import logging
import os

import pytest

from easyraft.config import Config
from easyraft.errors import ConfigError


def base(tmp_path, **over):
    d = {
        "id": 1,
        "cluster_id": 7,
        "waldir": str(tmp_path / "wal1"),
        "snapdir": str(tmp_path / "snap1"),
        "peers": [
            {"id": 1, "url": "http://127.0.0.1:9001"},
            {"id": 2, "url": "http://127.0.0.1:9002"},
            {"id": 3, "url": "http://127.0.0.1:9003"},
        ],
    }
    d.update(over)
    return d


def test_config_seed_example_loads_with_defaults(tmp_path):
    cfg = Config.load(base(tmp_path))
    assert cfg.id == 1 and cfg.cluster_id == 7
    assert cfg.url == "http://127.0.0.1:9001"
    assert cfg.peer_urls == {1: "http://127.0.0.1:9001", 2: "http://127.0.0.1:9002",
                             3: "http://127.0.0.1:9003"}
    assert (cfg.tickms, cfg.election_tick, cfg.heartbeat_tick) == (100, 10, 1)
    assert cfg.pre_vote and cfg.check_quorum and cfg.fsync and not cfg.join
    assert os.path.isdir(cfg.waldir) and os.path.isdir(cfg.snapdir)


def test_config_loads_json_text_and_file(tmp_path):
    text = json.dumps(base(tmp_path, boostrap_timeout=3))
    assert Config.load(text).boostrap_timeout == 3.0
    path = tmp_path / "c.json"
    path.write_text(text)
    assert Config.load(str(path)).boostrap_timeout == 3.0
    assert Config.load(path).id == 1


def test_config_accepts_corrected_bootstrap_spelling(tmp_path):
    assert Config.load(base(tmp_path, bootstrap_timeout=2.5)).boostrap_timeout == 2.5


def test_config_unknown_key_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="easyraft"):
        Config.load(base(tmp_path, frobnicate=1))
    assert "frobnicate" in caplog.text


@pytest.mark.parametrize(
    "over, want_field",
    [
        ({"id": 0}, "id"),
        ({"id": -1}, "id"),
        ({"id": "1"}, "id"),
        ({"id": True}, "id"),
        ({"id": 9}, "id"),
        ({"peers": []}, "peers"),
        ({"peers": "x"}, "peers"),
        ({"peers": [{"id": 1, "url": "http://127.0.0.1:1"}, {"id": 1, "url": "http://127.0.0.1:2"}]},
         "peers[1].id"),
        ({"peers": [{"id": 1, "url": "http://127.0.0.1:1"}, {"id": 2, "url": "http://127.0.0.1:1"}]},
         "peers[1].url"),
        ({"peers": [{"id": 1, "url": "ftp://127.0.0.1:1"}]}, "peers[0].url"),
        ({"peers": [{"id": 1, "url": "http://127.0.0.1"}]}, "peers[0].url"),
        ({"peers": [{"id": 1, "url": "http://127.0.0.1:99999"}]}, "peers[0].url"),
        ({"peers": [{"id": 1, "url": "http://127.0.0.1:5/path"}]}, "peers[0].url"),
        ({"peers": [{"id": 1}]}, "peers[0].url"),
        ({"peers": [5]}, "peers[0]"),
        ({"heartbeat_tick": 10, "election_tick": 10}, "heartbeat_tick"),
        ({"election_tick": 0}, "election_tick"),
        ({"tickms": 0}, "tickms"),
        ({"max_size_per_msg": -1}, "max_size_per_msg"),
        ({"max_inflight_msgs": 0}, "max_inflight_msgs"),
        ({"snap_count": -5}, "snap_count"),
        ({"snap_count": 1.5}, "snap_count"),
        ({"boostrap_timeout": -1}, "boostrap_timeout"),
        ({"join": "yes"}, "join"),
        ({"waldir": ""}, "waldir"),
        ({"waldir": None}, "waldir"),
        ({"tls_cert_file": "/nonexistent/cert.pem", "tls_key_file": "/nonexistent/k"},
         "tls_cert_file"),
        ({"tls_cert_file": "/x"}, "tls_key_file"),
    ],
)
def test_config_invalid_names_field(tmp_path, over, want_field):
    with pytest.raises(ConfigError) as ei:
        Config.load(base(tmp_path, **over))
    assert ei.value.field == want_field, str(ei.value)
    assert want_field in str(ei.value)


def test_config_same_wal_and_snap_dir_refused(tmp_path):
    with pytest.raises(ConfigError, match="snapdir"):
        Config.load(base(tmp_path, snapdir=str(tmp_path / "wal1")))


def test_config_unwritable_dir_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="waldir"):
        Config.load(base(tmp_path, waldir=str(blocker / "sub")))


@pytest.mark.parametrize("text", ["", "{", "[1,2]", "{\"id\": 1,}", "null"])
def test_config_malformed_json(text):
    with pytest.raises(ConfigError) as ei:
        Config.from_json(text)
    assert ei.value.field == "<json>"


def test_config_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        Config.load("/nonexistent/easyraft.json")
