"""Import every table model so the metadata is complete (Alembic, tests)."""

from service.accounts import models as accounts_models
from service.alignment import models as alignment_models
from service.deals import models as deals_models
from service.forecasts import models as forecasts_models
from service.lifecycle import models as lifecycle_models
from service.outbound import models as outbound_models
from service.plans import models as plans_models
from service.playbooks import models as playbooks_models
from service.tasks import models as tasks_models
from service.timers import models as timers_models
from service.webhooks import models as webhooks_models
from service.workspaces import models as workspaces_models

__all__ = [
    "accounts_models",
    "alignment_models",
    "deals_models",
    "forecasts_models",
    "lifecycle_models",
    "outbound_models",
    "plans_models",
    "playbooks_models",
    "tasks_models",
    "timers_models",
    "webhooks_models",
    "workspaces_models",
]
