"""The server's malloc settings (server/allocator.py)."""

import ctypes.util

import pytest

from mmrag.server.allocator import limit_arenas, trim

glibc = pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library found")


@glibc
def test_arenas_are_capped_unless_the_user_chose_a_cap(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas(2) is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas(2) is False  # glibc applied the user's cap at start-up
    trim()  # returns memory, raises nothing
