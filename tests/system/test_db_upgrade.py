"""``service db upgrade`` as a process: it finds its migrations from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_db_upgrade_works_from_any_folder(tmp_path: Path) -> None:
    """alembic.ini is found beside the package, not only in the current folder."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "service", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "elsewhere.db").is_file()
