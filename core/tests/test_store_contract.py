"""The core's own stores pass the store conformance suite that any store can run."""

from __future__ import annotations

from pathlib import Path

import pytest
from pixalert._sqlite import SQLiteHistoryStore
from pixalert.storage import Clock, MemoryDatabase, MemoryHistoryStore
from pixalert.testing import StoreContract


class TestMemoryStoreContract(StoreContract):
    """The in-memory store: handles share a MemoryDatabase per name."""

    databases: dict[str, MemoryDatabase]

    def make_store(self, clock: Clock, name: str) -> MemoryHistoryStore:
        return MemoryHistoryStore(clock, database=self.databases.setdefault(name, MemoryDatabase()))

    @pytest.fixture(autouse=True)
    def _databases(self) -> None:
        self.databases = {}


class TestSQLiteStoreContract(StoreContract):
    """The SQLite store: handles on one file per name; owners checked by file lock."""

    folder: Path

    def make_store(self, clock: Clock, name: str) -> SQLiteHistoryStore:
        return SQLiteHistoryStore(f"sqlite:///{self.folder}/{name}.db", clock)

    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path: Path) -> None:
        self.folder = tmp_path


class TestSQLiteBefore335StoreContract(TestSQLiteStoreContract):
    """The SQLite store as it runs on SQLite older than 3.35 (no RETURNING): the
    settles of a batch are written one by one."""

    @pytest.fixture(autouse=True)
    def _old_sqlite(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("pixalert._sqlite._RETURNING", False)
