"""The rule engine and the document checks, as pure functions (no database)."""

import copy
from decimal import Decimal

import pytest

from service.playbooks import document
from service.playbooks.effects import Owner, plan_effects, render_title
from service.playbooks.rules import Facts, compile_playbook, decide

DEFAULT = document.default_document()


def facts(event_type, stage, **overrides):
    base = dict(
        event_type=event_type,
        event_id="e1",
        source="hubspot",
        stage=stage,
        segment="mid_touch",
        arr=Decimal("50000"),
    )
    base.update(overrides)
    return Facts(**base)


@pytest.fixture
def playbook():
    return compile_playbook(DEFAULT, version=1)


def test_default_playbook_is_valid_and_yaml_on_is_a_key():
    assert document.validate(DEFAULT) == []
    assert all("on" in rule for rule in DEFAULT["rules"])


@pytest.mark.parametrize(
    ("event_type", "stage", "outcome", "to_stage"),
    [
        ("opportunity_created", "QUALIFY", "apply", "ACQUIRE"),
        ("opportunity_created", "IMPLEMENT", "ignored", None),
        ("closed_won", "ACQUIRE", "apply", "IMPLEMENT"),
        ("closed_lost", "ACQUIRE", "apply", "QUALIFY"),
        ("go_live", "IMPLEMENT", "apply", "VALUE"),
        ("go_live", "ACQUIRE", "pending", "VALUE"),
        ("go_live", "VALUE", "ignored", None),
        ("renewal_window_opened", "VALUE", "apply", "RENEW"),
        ("renewal_won", "RENEW", "apply", "VALUE"),
        ("renewal_lost", "RENEW", "apply", "CHURNED"),
        ("expansion_opportunity_created", "VALUE", "apply", "EXPAND"),
        ("churned", "VALUE", "apply", "CHURNED"),
        ("closed_lost", "VALUE", "ignored", None),
        ("closed_won", "VALUE", "ignored", None),
    ],
)
def test_default_decisions(playbook, event_type, stage, outcome, to_stage):
    decision = decide(playbook, facts(event_type, stage))
    assert decision.outcome == outcome, decision.reason
    if outcome == "apply":
        assert decision.to_stage == to_stage
    else:
        assert decision.reason


def test_pending_reason_names_the_missing_stage(playbook):
    decision = decide(playbook, facts("go_live", "ACQUIRE"))
    assert decision.skipped == ("IMPLEMENT",)
    assert "IMPLEMENT" in decision.reason


def test_apply_skipping_policy(playbook):
    doc = copy.deepcopy(DEFAULT)
    doc["events"] = {"out_of_order": "apply_skipping"}
    decision = decide(compile_playbook(doc, 2), facts("go_live", "ACQUIRE"))
    assert (decision.outcome, decision.to_stage, decision.skipped) == (
        "apply",
        "VALUE",
        ("IMPLEMENT",),
    )


def test_renewal_won_with_growth_goes_to_expand(playbook):
    decision = decide(playbook, facts("renewal_won", "RENEW", data={"growth": True}))
    assert decision.to_stage == "EXPAND"
    assert decide(playbook, facts("renewal_won", "RENEW")).to_stage == "VALUE"


def test_conditions_segment_arr_source():
    doc = copy.deepcopy(DEFAULT)
    doc["stages"][1]["next"] = ["IMPLEMENT", "VALUE"]
    doc["rules"].insert(
        0,
        {
            "name": "Low touch skips implementation",
            "on": "closed_won",
            "when": {"segment_in": ["low_touch"], "arr_max": "20000.00", "source_in": ["hubspot"]},
            "move_to": "VALUE",
        },
    )
    playbook = compile_playbook(doc, 3)
    low = facts("closed_won", "ACQUIRE", segment="low_touch", arr=Decimal("12000"))
    assert decide(playbook, low).to_stage == "VALUE"
    assert (
        decide(
            playbook, facts("closed_won", "ACQUIRE", segment="low_touch", arr=Decimal("90000"))
        ).to_stage
        == "IMPLEMENT"
    )
    assert (
        decide(
            playbook,
            facts(
                "closed_won", "ACQUIRE", segment="low_touch", arr=Decimal("1"), source="salesforce"
            ),
        ).to_stage
        == "IMPLEMENT"
    )


def test_no_matching_rule_explains_each_rule(playbook):
    decision = decide(playbook, facts("opportunity_created", "VALUE"))
    assert decision.outcome == "ignored"
    assert "the account is in VALUE" in decision.reason


def test_effects_handoff_tasks_and_placeholders(playbook):
    decision = decide(playbook, facts("go_live", "IMPLEMENT"))
    effects = plan_effects(
        playbook,
        decision,
        facts("go_live", "IMPLEMENT"),
        account={"name": "Acme"},
        owners={"csm": Owner("chris", "Chris")},
        renewal_owner="csm",
    )
    assert (
        effects.handoff.department == "csm"
        and effects.handoff.from_department == "professional_services"
    )
    assert effects.handoff.assignee == Owner("chris", "Chris")
    assert "Hold the post-production review" in effects.handoff.checklist
    assert [t.department for t in effects.tasks] == ["professional_services", "marketing"]
    assert effects.tasks[0].title == "Post-production review for Acme"


def test_renewal_prep_goes_to_renewal_owner_without_handoff(playbook):
    for owner, handoff in (("csm", False), ("sales", True)):
        decision = decide(playbook, facts("renewal_window_opened", "VALUE"))
        effects = plan_effects(
            playbook,
            decision,
            facts("renewal_window_opened", "VALUE"),
            account={"name": "Acme"},
            owners={"sales": Owner("sam", None)},
            renewal_owner=owner,
        )
        assert (effects.handoff is not None) is handoff
        assert effects.tasks[0].department == owner


def test_render_title_only_fills_known_fields():
    assert render_title("{account.name} / {x} / {account.__class__}", {"account.name": "A"}) == (
        "A / {x} / {account.__class__}"
    )


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda d: d["rules"][0].update(move_to="MARS"), "/rules/0/move_to"),
        (lambda d: d["stages"][0].update(quarterback="legal"), "/stages/0/quarterback"),
        (lambda d: d["stages"][0].update(next=["QUALIFY"]), "/stages/0/next/0"),
        (
            lambda d: d["rules"][2]["tasks"][0].update(title="{account.secret}"),
            "/rules/2/tasks/0/title",
        ),
        (lambda d: d["rules"][0].update(on="won"), "/rules/0/on"),
        (lambda d: d["stages"].append(dict(d["stages"][0])), "/stages/7/key"),
        (lambda d: d.pop("rules"), ""),
        (lambda d: d["time_rules"][1].pop("stage"), "/time_rules/1"),
    ],
)
def test_invalid_documents_name_the_pointer(mutate, pointer):
    doc = copy.deepcopy(DEFAULT)
    mutate(doc)
    errors = document.validate(doc)
    assert errors
    assert pointer in [error.pointer for error in errors], errors


def test_yaml_syntax_errors_are_reported():
    with pytest.raises(document.InvalidPlaybook) as raised:
        document.parse("name: [unclosed")
    assert "line" in raised.value.errors[0].message
