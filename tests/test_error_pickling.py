"""The errors travel between processes: they must survive pickling with every attribute."""

from __future__ import annotations

import pickle

from poisonscan.errors import ConfigError, InputError


def test_input_error_survives_pickling() -> None:
    exc = InputError("data/a.jsonl", "malformed JSON", location="line 4", reason="malformed_json")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is InputError
    assert (back.path, back.detail, back.location, back.reason) == (
        "data/a.jsonl", "malformed JSON", "line 4", "malformed_json")
    assert str(back) == str(exc) == "data/a.jsonl: line 4: malformed JSON"
    bare = pickle.loads(pickle.dumps(InputError("b.parquet", "corrupt")))
    assert str(bare) == "b.parquet: corrupt"
    assert bare.location is None and bare.reason == "unreadable"


def test_config_error_survives_pickling() -> None:
    back = pickle.loads(pickle.dumps(ConfigError("--jobs: must be at least 1")))
    assert type(back) is ConfigError and str(back) == "--jobs: must be at least 1"
