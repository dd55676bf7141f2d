"""Import every table model so the metadata is complete (Alembic, tests)."""

from service.accounts import models as accounts_models
from service.lifecycle import models as lifecycle_models
from service.tasks import models as tasks_models
from service.workspaces import models as workspaces_models

__all__ = ["accounts_models", "lifecycle_models", "tasks_models", "workspaces_models"]
