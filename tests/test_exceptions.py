"""The error tree (myshell_sync/_exceptions.py): pickling and attributes."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from myshell_sync import _exceptions
from myshell_sync._exceptions import MyshellError, RateLimitError, UnsupportedModelError

ERRORS = [getattr(_exceptions, name) for name in _exceptions.__all__]


def _sample(cls: type) -> MyshellError:
    """An instance of ``cls`` with every attribute away from its default."""
    if cls is UnsupportedModelError:
        error = cls("gpt-9", ["gpt-4", "claude"], hint="or ask the admin")
    elif cls is RateLimitError:
        error = cls("slow down", retry_after=2.5, req_id="r-1", partial_text="part")
    else:
        error = cls("boom: check base_url", req_id="r-1", partial_text="part")
    # as the transports do once a reply has streamed
    error.req_id = "r-1"
    error.partial_text = "part"
    return error


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_pickle(cls):
    error = _sample(cls)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol))
        assert type(copy) is cls
        assert str(copy) == str(error)
        assert repr(copy) == repr(error)
        assert vars(copy) == vars(error)
        assert copy.args == error.args


def _raise_unsupported_model(model: str) -> None:
    raise UnsupportedModelError(model, ["gpt-4"])


def test_an_error_raised_in_a_process_pool_worker_reaches_the_parent_typed():
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(_raise_unsupported_model, "gpt-9")
        with pytest.raises(UnsupportedModelError, match="unsupported model 'gpt-9'") as info:
            future.result(timeout=60)
    assert info.value.model == "gpt-9"
