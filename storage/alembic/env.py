"""Alembic environment shared by every service; see storage.migrate."""

from alembic import context

from storage.migrate import run_environment

# alembic.context is a module that proxies the EnvironmentContext of the running command.
run_environment(context)  # type: ignore[arg-type]
