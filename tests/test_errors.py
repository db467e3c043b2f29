"""Error signatures: failures that differ only by addresses, temp paths or numbers group."""

import pytest

from runs.flaky.errors import error_key, error_line

SLOW = "def t():\n>   assert x\nE   AssertionError: search took {} of the 0.8 budget\n\nt.py:9: E"


def test_headline_is_the_first_E_line_else_the_last_line():
    assert error_line(SLOW.format("0.93")) == "AssertionError: search took 0.93 of the 0.8 budget"
    assert error_line("boom\n\nlast words") == "last words"
    assert error_line("") == error_key("") == "(no error message)"


def test_addresses_and_temporary_paths_do_not_split_an_error():
    one = "E   AssertionError: <Thing at 0x7f00ab> in /tmp/pytest-of-root/pytest-1/x"
    two = "E   AssertionError: <Thing at 0x7f99cd> in /tmp/pytest-of-root/pytest-7/x"
    assert error_key(one) == error_key(two)


@pytest.mark.parametrize(
    "a, b",
    [
        (SLOW.format("0.93"), SLOW.format("0.87")),
        ("E   TimeoutError: took 0.93s", "E   TimeoutError: took 1.5s"),
        ("E   Timeout >250ms", "E   Timeout >1200ms"),
        ("E   expected 5 but got 7.", "E   expected 5 but got 12."),
        ("E   assert 97% >= 99%", "E   assert 98.5% >= 99%"),
        ("E   ValueError: -1e-05 is negative", "E   ValueError: -3e-02 is negative"),
    ],
)
def test_numbers_and_their_units_do_not_split_an_error(a, b):
    assert error_key(a) == error_key(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("E   KeyError: 'a1'", "E   KeyError: 'b1'"),  # digits inside a name
        ("E   needs version 1.2.3", "E   needs version 1.2.4"),  # a version is not a number
        ("E   ConnectionError: refused", "E   TimeoutError: refused"),
    ],
)
def test_different_errors_stay_apart(a, b):
    assert error_key(a) != error_key(b)


def test_the_masked_headline_reads_as_the_error():
    assert error_key(SLOW.format("0.93")) == "AssertionError: search took # of the # budget"
    assert error_key("E   expected 5 but got 7.") == "expected # but got #."
