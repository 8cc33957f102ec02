"""Django admin: envelope and policy edits are validated like paper.yaml and
written through the services (with a change-log entry); the change log is
read-only; session actions move sessions along the lifecycle."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sessions_app.admin import ENVELOPE_FIELDS, POLICY_FIELDS
from sessions_app.models import ChangeLogEntry, LanePolicy, PaperSession, RiskEnvelope
from telemetry_app.models import TelemetryEvent

SID = "research_fx_momentum_v13"


@pytest.fixture
def admin_client(loaded, client, admin_user):
    client.force_login(admin_user)
    return client


def _envelope(lane: str = "paper_research") -> RiskEnvelope:
    return RiskEnvelope.objects.get(lane__name=lane)


def _envelope_values(envelope: RiskEnvelope) -> dict:
    return {k: getattr(envelope, k) for k in ENVELOPE_FIELDS}


def _envelope_url(envelope: RiskEnvelope) -> str:
    return f"/admin/sessions_app/riskenvelope/{envelope.pk}/change/"


def _envelope_form(envelope: RiskEnvelope, **changes) -> dict:
    """The change form as the browser would post it: current values, then ``changes``."""
    data = {k: str(v) for k, v in _envelope_values(envelope).items()}
    data.update({"change_reason": "tighten limits", "_save": "Save"})
    data.update({k: str(v) for k, v in changes.items()})
    return data


def _policy(lane: str = "paper_research") -> LanePolicy:
    return LanePolicy.objects.get(lane__name=lane)


def _policy_url(policy: LanePolicy) -> str:
    return f"/admin/sessions_app/lanepolicy/{policy.pk}/change/"


def _policy_form(policy: LanePolicy, **changes) -> dict:
    """The change form as the browser would post it (JSON fields as JSON, empty for None)."""
    data = {}
    for k in POLICY_FIELDS:
        value = getattr(policy, k)
        data[k] = json.dumps(value) if isinstance(value, list | dict) else "" if value is None else str(value)
    data.update({"change_reason": "policy review", "_save": "Save"})
    data.update(changes)
    return data


def _form_errors(response) -> dict:
    return response.context["adminform"].form.errors


# --- risk envelope -------------------------------------------------------------------


def test_envelope_change_page_loads_with_the_current_values(admin_client):
    envelope = _envelope()

    response = admin_client.get(_envelope_url(envelope))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="change_reason"' in html
    assert 'name="max_order_notional" value="250000.00"' in html
    assert 'name="max_daily_loss" value="25000.00"' in html


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"max_order_notional": "3000000.00"}, "__all__",
         "max_order_notional cannot exceed max_gross_exposure"),
        ({"max_net_exposure": "2500000.00"}, "__all__",
         "max_net_exposure cannot exceed max_gross_exposure"),
        ({"max_daily_loss": "-1.00"}, "max_daily_loss", "greater than 0"),
        ({"max_drawdown_pct": "150"}, "max_drawdown_pct", "less than or equal to 100"),
        ({"max_orders_per_minute": "0"}, "max_orders_per_minute", "greater than 0"),
    ],
    ids=["order_above_gross", "net_above_gross", "negative_daily_loss", "drawdown_above_100",
         "zero_orders_per_minute"],
)
def test_invalid_envelope_is_rejected_and_nothing_written(admin_client, changes, field, message):
    # given
    envelope = _envelope()
    before = _envelope_values(envelope)
    n_changes = ChangeLogEntry.objects.count()

    # when
    response = admin_client.post(_envelope_url(envelope), _envelope_form(envelope, **changes))

    # then the form comes back with the error
    assert response.status_code == 200
    errors = _form_errors(response)
    assert field in errors, errors
    assert any(message in e for e in errors[field]), errors
    assert message in response.content.decode()
    # and neither the row nor the change log moved
    assert _envelope_values(_envelope()) == before
    assert ChangeLogEntry.objects.count() == n_changes


def test_envelope_change_without_reason_is_rejected(admin_client):
    envelope = _envelope()
    before = _envelope_values(envelope)
    n_changes = ChangeLogEntry.objects.count()

    response = admin_client.post(_envelope_url(envelope),
                                 _envelope_form(envelope, max_daily_loss="20000.00", change_reason=""))

    assert response.status_code == 200
    assert "change_reason" in _form_errors(response)
    assert _envelope_values(_envelope()) == before
    assert ChangeLogEntry.objects.count() == n_changes


def test_valid_envelope_change_is_saved_with_a_change_log_entry(admin_client):
    # given
    envelope = _envelope()
    last_change_id = ChangeLogEntry.objects.latest("id").id

    # when
    response = admin_client.post(
        _envelope_url(envelope),
        _envelope_form(envelope, max_daily_loss="20000.00", change_reason="loss limit after review"),
    )

    # then the row is updated
    assert response.status_code == 302, _form_errors(response) if response.context else response
    saved = _envelope()
    assert saved.max_daily_loss == Decimal("20000.00")
    assert saved.max_order_notional == Decimal("250000.00")  # untouched fields stay
    assert _envelope("paper_gatecheck").max_daily_loss == Decimal("5000.00")  # other lane untouched

    # and exactly one change-log entry records who, why, before and after
    new = list(ChangeLogEntry.objects.filter(id__gt=last_change_id))
    assert len(new) == 1
    change = new[0]
    assert (change.actor, change.action, change.target_type, change.target_id, change.reason) == (
        "admin:ada_admin", "risk_envelope_update", "risk_envelope", "paper_research",
        "loss limit after review")
    assert Decimal(change.before["max_daily_loss"]) == Decimal("25000")
    assert Decimal(change.after["max_daily_loss"]) == Decimal("20000")


# --- lane policy ---------------------------------------------------------------------


def test_policy_change_page_loads(admin_client):
    response = admin_client.get(_policy_url(_policy()))

    assert response.status_code == 200
    assert 'name="allowed_strategies"' in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("allowed_strategies", ["strat.momentum_fx", "strat.does_not_exist"],
         "unknown registry id 'strat.does_not_exist'"),
        ("allowed_strategies", ["strat.momentum_fx", "model.momentum"],
         "'model.momentum' is a model, not a strategy"),
        ("allowed_models", ["model.momentum", "model.ghost"], "unknown registry id 'model.ghost'"),
    ],
    ids=["unknown_strategy", "model_as_strategy", "unknown_model"],
)
def test_policy_with_bad_registry_id_is_rejected(admin_client, field, value, message):
    # given
    policy = _policy()
    before = _policy_form(policy)
    n_changes = ChangeLogEntry.objects.count()

    # when
    response = admin_client.post(_policy_url(policy), _policy_form(policy, **{field: json.dumps(value)}))

    # then
    assert response.status_code == 200
    errors = _form_errors(response)
    assert field in errors, errors
    assert any(message in e for e in errors[field]), errors
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert _policy_form(_policy()) == before
    assert ChangeLogEntry.objects.count() == n_changes


def test_policy_promoting_to_itself_is_rejected(admin_client):
    policy = _policy()
    n_changes = ChangeLogEntry.objects.count()

    response = admin_client.post(_policy_url(policy), _policy_form(policy, promotes_to="paper_research"))

    assert response.status_code == 200
    assert any("cannot promote to itself" in e for e in _form_errors(response)["promotes_to"])
    assert _policy().promotes_to == "paper_gatecheck"
    assert ChangeLogEntry.objects.count() == n_changes


def test_valid_policy_change_is_saved_with_a_change_log_entry(admin_client):
    policy = _policy()
    last_change_id = ChangeLogEntry.objects.latest("id").id

    response = admin_client.post(
        _policy_url(policy),
        _policy_form(policy, allowed_strategies=json.dumps(["strat.momentum_fx"]), min_trades="250"),
    )

    assert response.status_code == 302
    saved = _policy()
    assert saved.allowed_strategies == ["strat.momentum_fx"]
    assert saved.min_trades == 250
    new = list(ChangeLogEntry.objects.filter(id__gt=last_change_id))
    assert [(c.actor, c.action, c.target_id, c.reason) for c in new] == [
        ("admin:ada_admin", "lane_policy_update", "paper_research", "policy review")]
    assert new[0].before["min_trades"] == 200 and new[0].after["min_trades"] == 250
    assert new[0].after["allowed_strategies"] == ["strat.momentum_fx"]


# --- lane cooldown (on the lane policy page) ----------------------------------------


def test_policy_change_page_shows_the_lane_cooldown(admin_client):
    response = admin_client.get(_policy_url(_policy()))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="cooldown_max_breaches" value="5"' in html
    assert 'name="cooldown_duration_s" value="300"' in html
    assert 'name="cooldown_max_loss" value="10000.00"' in html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cooldown_max_breaches", "0", "greater than or equal to 1"),
        ("cooldown_window_s", "0", "greater than or equal to 1"),
        ("cooldown_window_s", "90000", "less than or equal to 86400"),
        ("cooldown_duration_s", "0", "greater than or equal to 1"),
        ("cooldown_max_loss", "0", "greater than 0"),
        ("cooldown_max_loss", "-250.00", "greater than 0"),
    ],
    ids=["zero_breaches", "zero_window", "window_above_a_day", "zero_duration", "zero_loss", "negative_loss"],
)
def test_invalid_cooldown_is_rejected_on_its_field_and_nothing_written(admin_client, field, value, message):
    # given
    policy = _policy()
    before = _policy_form(policy)
    n_changes = ChangeLogEntry.objects.count()

    # when
    response = admin_client.post(_policy_url(policy), _policy_form(policy, **{field: value}))

    # then the error is on the cooldown field (not on the promotion's max_breaches)
    assert response.status_code == 200
    errors = _form_errors(response)
    assert field in errors, errors
    assert any(message in e for e in errors[field]), errors
    assert "max_breaches" not in errors
    # and nothing moved
    assert _policy_form(_policy()) == before
    assert ChangeLogEntry.objects.count() == n_changes


def test_valid_cooldown_change_is_saved_logged_and_used_by_new_engines(admin_client):
    from sessions_app.engines import build_engine

    # given
    policy = _policy()
    last_change_id = ChangeLogEntry.objects.latest("id").id

    # when
    response = admin_client.post(_policy_url(policy), _policy_form(
        policy, cooldown_max_breaches="2", cooldown_window_s="120", cooldown_max_loss="7500.50"))

    # then the row is updated
    assert response.status_code == 302
    saved = _policy()
    assert (saved.cooldown_max_breaches, saved.cooldown_window_s, saved.cooldown_duration_s,
            saved.cooldown_max_loss) == (2, 120, 300, Decimal("7500.50"))
    assert saved.max_breaches == 5  # the promotion rule is a different setting
    # with one change-log entry, before and after
    new = list(ChangeLogEntry.objects.filter(id__gt=last_change_id))
    assert [(c.action, c.target_id) for c in new] == [("lane_policy_update", "paper_research")]
    assert new[0].before["cooldown_max_loss"] == "10000" and new[0].after["cooldown_max_loss"] == "7500.5"
    # and an engine built now cools down by the new rules
    cooldown = build_engine(PaperSession.objects.get(session_id=SID)).cooldown.policy
    assert (cooldown.max_breaches, cooldown.window_ns, cooldown.duration_ns, cooldown.max_loss) == (
        2, 120 * 10**9, 300 * 10**9, 7500.5)


def test_clearing_the_cooldown_loss_turns_the_loss_rule_off(admin_client):
    from sessions_app.engines import build_engine

    response = admin_client.post(_policy_url(_policy()), _policy_form(_policy(), cooldown_max_loss=""))

    assert response.status_code == 302
    assert _policy().cooldown_max_loss is None
    assert build_engine(PaperSession.objects.get(session_id=SID)).cooldown.policy.max_loss == float("inf")


# --- change log is read-only ---------------------------------------------------------


def test_change_log_changelist_loads(admin_client):
    response = admin_client.get("/admin/sessions_app/changelogentry/")

    assert response.status_code == 200
    assert "session_register" in response.content.decode()


def test_change_log_cannot_be_added(admin_client):
    n_changes = ChangeLogEntry.objects.count()

    assert admin_client.get("/admin/sessions_app/changelogentry/add/").status_code == 403
    response = admin_client.post("/admin/sessions_app/changelogentry/add/",
                                 {"actor": "mallory", "action": "forged", "target_type": "x",
                                  "target_id": "y"})
    assert response.status_code == 403
    assert ChangeLogEntry.objects.count() == n_changes


def test_change_log_cannot_be_changed(admin_client):
    entry = ChangeLogEntry.objects.latest("id")
    url = f"/admin/sessions_app/changelogentry/{entry.pk}/change/"

    response = admin_client.post(url, {"actor": "mallory", "action": "forged", "reason": "rewrite",
                                       "target_type": "x", "target_id": "y", "_save": "Save"})

    assert response.status_code == 403
    fresh = ChangeLogEntry.objects.get(pk=entry.pk)
    assert (fresh.actor, fresh.action, fresh.reason) == (entry.actor, entry.action, entry.reason)


def test_change_log_cannot_be_deleted(admin_client):
    entry = ChangeLogEntry.objects.latest("id")
    n_changes = ChangeLogEntry.objects.count()
    url = f"/admin/sessions_app/changelogentry/{entry.pk}/delete/"

    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    # nor through the bulk action
    admin_client.post("/admin/sessions_app/changelogentry/",
                      {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes",
                       "index": "0"})
    assert ChangeLogEntry.objects.count() == n_changes
    assert ChangeLogEntry.objects.filter(pk=entry.pk).exists()


# --- paper session actions -----------------------------------------------------------


def _run_action(client, action: str, session_id: str = SID):
    pk = PaperSession.objects.get(session_id=session_id).pk
    return client.post("/admin/sessions_app/papersession/",
                       {"action": action, "_selected_action": [str(pk)], "index": "0"}, follow=True)


def test_session_changelist_offers_the_lifecycle_actions(admin_client):
    response = admin_client.get("/admin/sessions_app/papersession/")

    assert response.status_code == 200
    html = response.content.decode()
    for action in ("session_start", "session_pause", "session_resume", "session_stop", "session_abort"):
        assert f'value="{action}"' in html
    assert 'value="delete_selected"' not in html


def test_session_start_action_starts_a_scheduled_session(admin_client):
    # given
    n_events = TelemetryEvent.objects.count()
    last_change_id = ChangeLogEntry.objects.latest("id").id

    # when
    response = _run_action(admin_client, "session_start")

    # then
    assert response.status_code == 200
    assert f"{SID}: start done" in [str(m) for m in response.context["messages"]]
    session = PaperSession.objects.get(session_id=SID)
    assert session.status == "running"
    assert session.started_at is not None
    assert TelemetryEvent.objects.count() == n_events + 1
    event = TelemetryEvent.objects.filter(session=session).latest("sequence")
    assert (event.sequence, event.event_type) == (2, "paper_session_state_change")
    assert event.payload["actor"] == "admin:ada_admin"
    assert (event.payload["from"], event.payload["to"]) == ("scheduled", "running")
    new = list(ChangeLogEntry.objects.filter(id__gt=last_change_id))
    assert [(c.actor, c.action, c.target_id) for c in new] == [
        ("admin:ada_admin", "session_start", SID)]
    # the other sessions were not touched
    assert set(PaperSession.objects.exclude(session_id=SID).values_list("status", flat=True)) == {
        "scheduled"}


def test_illegal_session_action_reports_an_error_and_writes_nothing(admin_client):
    n_events, n_changes = TelemetryEvent.objects.count(), ChangeLogEntry.objects.count()

    response = _run_action(admin_client, "session_resume")

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("cannot resume" in m for m in messages), messages
    assert PaperSession.objects.get(session_id=SID).status == "scheduled"
    assert (TelemetryEvent.objects.count(), ChangeLogEntry.objects.count()) == (n_events, n_changes)


# --- kill switches and cooldowns -----------------------------------------------------------


def test_a_kill_switch_set_in_the_admin_goes_through_the_service_with_its_reason(admin_client):
    from sessions_app.models import KillSwitch

    # given a running session of the lane
    admin_client.post("/admin/sessions_app/papersession/", {"action": "session_start", "_selected_action":
                                                            [PaperSession.objects.get(session_id=SID).pk]})
    # when an admin adds a lane switch, halted, with a reason
    response = admin_client.post("/admin/sessions_app/killswitch/add/", {
        "scope": "lane:paper_research", "state": "halted", "change_reason": "venue outage", "_save": "Save"})
    # then it is stored, logged with the admin as actor, and the lane's live session got the event
    assert response.status_code == 302, _form_errors(response)
    switch = KillSwitch.objects.get(scope="lane:paper_research")
    assert (switch.state, switch.actor, switch.reason) == ("halted", "admin:ada_admin", "venue outage")
    change = ChangeLogEntry.objects.get(action="kill_switch_set")
    assert (change.actor, change.reason, change.before, change.after) == (
        "admin:ada_admin", "venue outage", {"state": "active"}, {"state": "halted"})
    event = TelemetryEvent.objects.get(session__session_id=SID, event_type="kill_switch_change")
    assert event.payload["to"] == "halted" and event.payload["actor"] == "admin:ada_admin"
    # and the list shows it
    assert "venue outage" in admin_client.get("/admin/sessions_app/killswitch/").content.decode()

    # changing it back needs a reason too; the scope stays what it was
    url = f"/admin/sessions_app/killswitch/{switch.pk}/change/"
    no_reason = admin_client.post(url, {"state": "active", "_save": "Save"})
    assert no_reason.status_code == 200 and "change_reason" in _form_errors(no_reason)
    assert KillSwitch.objects.get(pk=switch.pk).state == "halted"
    admin_client.post(url, {"state": "active", "change_reason": "venue back", "_save": "Save"})
    assert KillSwitch.objects.get(pk=switch.pk).state == "active"
    assert ChangeLogEntry.objects.filter(action="kill_switch_set").count() == 2
    # a switch is never deleted (set it back to active: the change is logged)
    assert admin_client.post(f"/admin/sessions_app/killswitch/{switch.pk}/delete/", {"post": "yes"}
                             ).status_code == 403


def test_a_kill_switch_on_an_unknown_scope_is_refused_in_the_admin(admin_client):
    from sessions_app.models import KillSwitch

    response = admin_client.post("/admin/sessions_app/killswitch/add/", {
        "scope": "lane:nowhere", "state": "halted", "change_reason": "typo", "_save": "Save"})
    assert response.status_code == 200  # the form again, with the error on the field
    assert "expected 'global', 'lane:<lane name>'" in " ".join(_form_errors(response)["scope"])
    assert not KillSwitch.objects.exists() and not ChangeLogEntry.objects.filter(action="kill_switch_set").exists()


def test_cooldowns_are_listed_read_only(admin_client):
    assert admin_client.get("/admin/sessions_app/sessioncooldown/").status_code == 200
    assert admin_client.get("/admin/sessions_app/sessioncooldown/add/").status_code == 403
