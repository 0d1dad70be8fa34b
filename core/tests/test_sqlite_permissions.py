"""The SQLite history is owner-only (0600), like pixalert.toml: alert text can be sensitive."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pixalert.testing import make_manager


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask 022", "umask 000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


async def test_a_new_history_and_its_wal_are_owner_only(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "state" / "history.db"
    manager = make_manager(history=f"sqlite:///{db}")
    async with manager:
        await manager.send_alert("Disk full", "97%", "low")
        assert mode(db) == 0o600
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()  # open in WAL mode, with writes
        assert mode(wal) == 0o600 and mode(shm) == 0o600


async def test_an_existing_history_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "history.db"
    db.touch()
    db.chmod(0o640)
    manager = make_manager(history=f"sqlite:///{db}")
    async with manager:
        await manager.send_alert("Disk full", "97%", "low")
        assert mode(db) == 0o640
        wal = mode(Path(f"{db}-wal"))
        assert wal & 0o600 == 0o600 and wal & ~mode(db) == 0  # never more open than the db
