"""``python -m rlcot.cli`` is the ``rlcot`` command (the tests run it so, in a fresh interpreter)."""

from rlcot.cli import app

app()
