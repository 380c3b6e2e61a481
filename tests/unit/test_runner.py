"""server/runner.py: GC tuning, applied by `serve` only, on the versions it is for; the
`--server` check."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tokenrelay.config import Settings
from tokenrelay.errors import TokenrelayError
from tokenrelay.server import create_app, runner


@pytest.fixture
def gc_state() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_building_the_app_leaves_the_process_gc_alone(gc_state: None) -> None:
    before = gc.get_threshold(), gc.get_freeze_count()
    create_app(Settings(model="scripted", database="memory"))
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_tuning_applies_on_a_version_it_is_for(gc_state: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "GC_TUNED_VERSIONS", ((3, 0), (3, 99)))
    assert runner.tune_gc() is True
    assert gc.get_threshold()[2] == runner.FULL_COLLECTION_EVERY
    assert gc.get_freeze_count() > 0


def test_tuning_is_skipped_where_it_would_do_nothing(gc_state: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.14's incremental collector ignores the third threshold.
    monkeypatch.setattr(runner, "GC_TUNED_VERSIONS", ((3, 0), (3, 1)))
    before = gc.get_threshold()
    assert runner.tune_gc() is False
    assert gc.get_threshold() == before


def test_granian_not_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.importlib.util, "find_spec",
                        lambda name: None if name == "granian" else object())
    with pytest.raises(TokenrelayError, match=r"pip install 'tokenrelay\[granian\]'"):
        runner.check_server(Settings(server="granian"))
    runner.check_server(Settings())  # uvicorn, the default, needs nothing more


def test_the_log_level_is_granians_own() -> None:
    pytest.importorskip("granian")
    from granian.log import LogLevels

    assert runner._granian_level("WARNING") is LogLevels.warning
    assert runner._granian_level("trace") is LogLevels.debug
