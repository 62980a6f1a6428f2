"""``python -m cytophen``: the ``cytophen`` command."""

from cytophen.cli import run

if __name__ == "__main__":
    run()
