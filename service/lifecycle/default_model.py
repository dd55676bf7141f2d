"""The lifecycle a new workspace starts with, from DESIGN.md's table and the seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

DEPARTMENTS: dict[str, str] = {
    "marketing": "Marketing",
    "sales": "Sales",
    "professional_services": "Professional Services",
    "csm": "Customer Success",
    "product": "Product",
    "finance": "Finance",
    "revops": "Revenue Operations",
}

RENEWAL_QUARTERBACKS = ("csm", "sales", "revops")


@dataclass(frozen=True)
class StageSpec:
    key: str
    name: str
    quarterback: str
    supporting: tuple[str, ...]
    next_stages: tuple[str, ...]
    backward_stages: tuple[str, ...] = field(default=())
    entered_when: str = ""


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "QUALIFY",
        "Qualify",
        "marketing",
        ("sales", "product", "csm"),
        ("ACQUIRE",),
        entered_when="a lead or account is known",
    ),
    StageSpec(
        "ACQUIRE",
        "Acquire",
        "sales",
        ("marketing", "csm", "finance", "product"),
        ("IMPLEMENT",),
        backward_stages=("QUALIFY",),
        entered_when="an opportunity is created (Marketing hands over to Sales)",
    ),
    StageSpec(
        "IMPLEMENT",
        "Implement",
        "professional_services",
        ("sales", "product", "finance", "marketing"),
        ("VALUE", "CHURNED"),
        entered_when="the deal is closed won (Sales hands over to Professional Services)",
    ),
    StageSpec(
        "VALUE",
        "Value",
        "csm",
        ("sales", "marketing", "product"),
        ("RENEW", "EXPAND", "CHURNED"),
        backward_stages=("IMPLEMENT",),
        entered_when="go-live: the post-production review hands over to the CSM",
    ),
    StageSpec(
        "RENEW",
        "Renew",
        "csm",
        ("finance", "product"),
        ("VALUE", "EXPAND", "CHURNED"),
        entered_when="the renewal window opens (e.g. 120 days before contract end)",
    ),
    StageSpec(
        "EXPAND",
        "Expand",
        "csm",
        ("sales", "finance", "product"),
        ("VALUE", "RENEW", "CHURNED"),
        backward_stages=("IMPLEMENT",),
        entered_when="an expansion opportunity, or a renewal won with growth",
    ),
    StageSpec(
        "CHURNED",
        "Churned",
        "csm",
        ("sales", "finance"),
        (),
        backward_stages=("QUALIFY", "ACQUIRE"),
        entered_when="the customer left; a win-back starts over in Qualify or Acquire",
    ),
)

INITIAL_STAGE = "QUALIFY"

# What the receiving quarterback checks off when it takes a customer over.
HANDOFF_CHECKLISTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("marketing", "sales"): (
        "Review lead source, campaign history and qualification notes",
        "Confirm the buying committee and pain points",
        "Book the discovery call",
    ),
    ("sales", "professional_services"): (
        "Read the signed contract scope and commitments",
        "Schedule the kickoff meeting",
        "Introduce the implementation team to the customer's stakeholders",
        "Agree the customer's three key outcomes for year 1",
    ),
    ("professional_services", "csm"): (
        "Hold the post-production review",
        "Walk the CSM through the success plan and open risks",
        "Introduce the CSM to the customer's champion",
    ),
}
DEFAULT_CHECKLIST: tuple[str, ...] = (
    "Review the account history and the notes left by the previous quarterback",
    "Introduce yourself to the customer's main contact",
)
HANDOFF_DUE_BUSINESS_DAYS = 2
