"""Test scheduling: the longest-first core (``core``, transport-free, used by both engines) and
its adapter to pytest-xdist's scheduler protocol (``xdist``)."""
