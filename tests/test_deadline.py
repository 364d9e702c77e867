"""One deadline per call (myshell_sync/_deadline.py): the limits left, on an injected clock, and
the timeout errors they make."""

from __future__ import annotations

import pytest

from myshell_sync import ConnectTimeoutError, MyshellTimeoutError, Timeout
from myshell_sync._deadline import Deadline, Limit
from myshell_sync._wording import Wording


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


# ----------------------------------------------------------------------
# Deadline


def test_a_deadline_starts_when_it_is_made(clock):
    deadline = Deadline(Timeout(5), clock)
    assert deadline.started == 1000.0
    assert deadline.now() == 1000.0
    assert deadline.elapsed() == 0.0
    clock.now = 1002.5
    assert deadline.now() == 1002.5
    assert deadline.elapsed() == 2.5
    assert deadline.timeout == Timeout(5)
    assert not deadline.cancelled.is_set()
    deadline.cancelled.set()
    assert deadline.cancelled.is_set()


def test_the_default_clock_is_monotonic():
    deadline = Deadline(Timeout(5))
    assert 0 <= deadline.elapsed() < 60


def test_without_a_total_there_is_no_total_limit(clock):
    deadline = Deadline(Timeout(5), clock)
    clock.now += 10**6
    assert deadline.total() == Limit(None, "total", None)
    assert not deadline.expired()


def test_the_total_left_counts_down_to_zero_and_stays_there(clock):
    deadline = Deadline(Timeout(5, total=10), clock)
    assert deadline.total() == Limit(10.0, "total", 10)
    clock.now += 4
    assert deadline.total() == Limit(6.0, "total", 10)
    assert not deadline.expired()
    clock.now += 6
    assert deadline.total() == Limit(0.0, "total", 10)
    assert deadline.expired()
    clock.now += 5
    assert deadline.total() == Limit(0.0, "total", 10)  # never negative
    assert deadline.expired()


def test_within_gives_the_named_limit_while_the_total_leaves_more(clock):
    deadline = Deadline(Timeout(connect=3, first_chunk=7, idle=2, total=10), clock)
    assert deadline.within("first_chunk", 7) == Limit(7, "first_chunk", 7)
    assert deadline.within("idle", 1.5) == Limit(1.5, "idle", 2)  # what is left of it, and its setting
    clock.now += 2
    assert deadline.within("first_chunk", 7) == Limit(7, "first_chunk", 7)  # 8 s of the total left


def test_within_gives_the_total_once_it_is_the_shorter(clock):
    deadline = Deadline(Timeout(first_chunk=7, total=10), clock)
    clock.now += 3
    assert deadline.within("first_chunk", 7) == Limit(7.0, "total", 10)  # equal: the total is to blame
    clock.now += 1
    assert deadline.within("first_chunk", 7) == Limit(6.0, "total", 10)
    assert deadline.within("idle", None) == Limit(6.0, "total", 10)  # no idle limit: the total still is


def test_within_without_a_total_is_the_named_limit_even_without_a_limit(clock):
    deadline = Deadline(Timeout(None), clock)
    assert deadline.within("idle", None) == Limit(None, "idle", None)
    assert deadline.within("idle", 4) == Limit(4, "idle", None)


def test_connect_carries_the_attempt(clock):
    deadline = Deadline(Timeout(connect=3, total=10), clock)
    assert deadline.connect() == Limit(3, "connect", 3, 1, 1)
    assert deadline.connect(2, 5) == Limit(3, "connect", 3, attempt=2, attempts=5)
    clock.now += 8
    assert deadline.connect(3, 5) == Limit(2.0, "total", 10, attempt=3, attempts=5)


# ----------------------------------------------------------------------
# Limit.error


def test_a_limit_defaults_to_one_attempt():
    limit = Limit(1.0, "idle", 2.0)
    assert (limit.attempt, limit.attempts) == (1, 1)


@pytest.mark.parametrize(
    "name, advice",
    [
        ("connect", "check the server and the network, or raise Timeout.connect"),
        ("first_chunk", "the bot may be busy: retry, or raise Timeout.first_chunk"),
        ("idle", "the bot may be busy: retry, or raise Timeout.idle"),
        ("total", "raise Timeout.total"),
    ],
)
def test_each_limit_says_what_to_do(name, advice):
    error = Limit(0.0, name, 2.5).error("waiting")
    assert str(error) == f"waiting ran out of Timeout.{name} of 2.5s; {advice}"
    assert type(error) is MyshellTimeoutError
    assert (error.limit, error.limit_seconds, error.req_id) == (name, 2.5, None)


def test_a_limit_without_a_value_gives_none():
    error = Limit(5.0, "total", None).error("reading")
    assert str(error) == "reading ran out of Timeout.total; raise Timeout.total"
    assert (error.limit, error.limit_seconds) == ("total", None)


def test_the_value_is_printed_short():
    assert "of 30s;" in str(Limit(0.0, "idle", 30.0).error("x"))
    assert "of 0.25s;" in str(Limit(0.0, "idle", 0.25).error("x"))


def test_one_attempt_of_one_says_nothing_of_attempts():
    assert "attempt" not in str(Limit(0.0, "connect", 3, attempt=1, attempts=1).error("connecting"))


def test_a_connect_timeout_after_retries_says_the_limit_is_per_attempt():
    error = Limit(0.0, "connect", 3, attempt=2, attempts=2).error("connecting to ws://h", ConnectTimeoutError)
    assert str(error) == (
        "connecting to ws://h ran out of Timeout.connect of 3s (per attempt; attempt 2 of 2); "
        "check the server and the network, or raise Timeout.connect"
    )
    assert type(error) is ConnectTimeoutError


def test_another_limit_after_retries_gives_the_attempt_alone():
    error = Limit(0.0, "total", 9, attempt=3, attempts=4).error("connecting")
    assert str(error) == "connecting ran out of Timeout.total of 9s (attempt 3 of 4); raise Timeout.total"


def test_the_error_carries_the_request_id():
    assert Limit(0.0, "idle", 1).error("reading", req_id="r-1").req_id == "r-1"


def test_a_wording_keeps_its_own_settings_and_parameters():
    what = Wording("waiting for {url} (see {s.base_url})", {"url": "http://h/{x}"})
    error = Limit(0.0, "first_chunk", 2).error(what)
    assert str(error) == (
        "waiting for http://h/{x} (see base_url) ran out of Timeout.first_chunk of 2s; "
        "the bot may be busy: retry, or raise Timeout.first_chunk"
    )


def test_a_plain_what_is_a_parameter_so_braces_are_harmless():
    error = Limit(0.0, "idle", 1).error("reading {s.token} {0}")
    assert str(error).startswith("reading {s.token} {0} ran out of Timeout.idle of 1s;")
