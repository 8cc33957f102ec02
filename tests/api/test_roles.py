"""Who may call what: every endpoint of ``/api/v1/`` × {anonymous, viewer, operator,
approver, admin}. The endpoints come from the URL conf, and the expected role of each
method is written out here by hand: an endpoint added without a line below fails the
test. Also: token authentication (created once, revoked), CSRF on session-authenticated
writes only, the error shape of refusals, the old ``/api/...`` paths."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from sessions_app.models import ApiToken, ChangeLogEntry
from tests.conftest import role_user, signed_in

SID, LANE = "research_fx_momentum_v13", "paper_research"
READ = {"viewer", "operator", "approver", "admin"}
OPERATE = {"operator", "admin"}
APPROVE = {"approver", "admin"}
ADMIN = {"admin"}
OPEN = {"anonymous", *READ}

# name -> method -> the roles allowed (by hand, from the role table)
EXPECTED: dict[str, dict[str, set[str]]] = {
    "root": {"GET": OPEN},
    "lane-list": {"GET": READ},
    "lane-summary": {"GET": READ},
    "promotion-funnel": {"GET": READ},
    "feed-list": {"GET": READ},
    "killswitches": {"GET": READ, "POST": OPERATE},
    "session-list": {"GET": READ, "POST": OPERATE},
    "session-detail": {"GET": READ},
    "session-action": {"POST": OPERATE},
    "session-events": {"GET": READ},
    "session-series": {"GET": READ},
    "session-summary": {"GET": READ},
    "session-comparison": {"GET": READ},
    "session-sel-evaluations": {"GET": READ},
    "session-incidents": {"GET": READ},
    "session-sel-evaluate": {"POST": OPERATE},
    "lane-detail": {"GET": READ},
    "lane-envelope": {"PATCH": ADMIN},
    "lane-policy": {"PATCH": ADMIN},
    "session-orders": {"GET": READ},
    "session-fills": {"GET": READ},
    "session-positions": {"GET": READ},
    "session-clone": {"POST": OPERATE},
    "session-tag": {"POST": OPERATE},
    "session-cooldown": {"GET": READ, "POST": OPERATE},
    "changelog": {"GET": READ},
    "system-health": {"GET": READ},
    "backtest-list": {"GET": READ},
    "backtest-detail": {"GET": READ},
    "backtest-shadow": {"POST": OPERATE},
    "backtest-import": {"POST": OPERATE},
    "promotion-list": {"GET": READ, "POST": OPERATE},
    "promotion-detail": {"GET": READ},
    "promotion-approve": {"POST": APPROVE},
    "promotion-reject": {"POST": APPROVE},
    "promotion-withdraw": {"POST": OPERATE},
}
ROLES = ("anonymous", "viewer", "operator", "approver", "admin")


def api_routes() -> dict[str, tuple[str, type]]:
    """name -> (path with example arguments, view class) for every route under /api/v1/."""
    resolver = next(r for r in get_resolver().url_patterns if isinstance(r, URLResolver) and r.namespace == "api")
    out = {}
    for p in resolver.url_patterns:
        assert isinstance(p, URLPattern), p
        kwargs = {k: {"session_id": SID, "lane": LANE, "request_id": 1, "backtest_id": "bt-1"}[k] for k in p.pattern.converters}
        out[p.name] = (reverse(f"api:{p.name}", kwargs=kwargs), p.callback.cls)
    return out


def methods_of(view) -> set[str]:
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}


@pytest.fixture
def clients(loaded, django_user_model):
    out = {"anonymous": Client()}
    for role in ("viewer", "operator", "approver"):
        out[role] = signed_in(role_user(django_user_model, f"{role}_1", role))
    out["admin"] = signed_in(role_user(django_user_model, "admin_1", "admin"))  # the admin role, not superuser
    return out


def test_every_endpoint_has_its_expected_roles_written_down():
    routes = api_routes()
    assert set(routes) == set(EXPECTED), "an endpoint without an expected role line (or a stale line)"
    for name, (_, view) in routes.items():
        assert methods_of(view) == set(EXPECTED[name]), name


@pytest.mark.django_db
def test_the_role_matrix(clients):
    wrong = []
    for name, (path, _) in api_routes().items():
        for method, allowed in EXPECTED[name].items():
            for role in ROLES:
                client = clients[role]
                response = (client.get(path) if method == "GET" else
                            getattr(client, method.lower())(path, {}, content_type="application/json"))
                code = response.status_code
                if role in allowed:
                    ok = code not in (401, 403)
                elif role == "anonymous":
                    ok = code == 401 and response.headers.get("WWW-Authenticate") == 'Token realm="api"' \
                        and response.json()["error"]["code"] == "not_authenticated"
                else:
                    ok = code == 403 and response.json()["error"]["code"] == "permission_denied"
                if not ok:
                    wrong.append(f"{method} {path} as {role}: {code}")
    assert wrong == []


@pytest.mark.django_db
def test_a_forbidden_write_names_the_role_it_needs(clients):
    response = clients["viewer"].post(f"/api/v1/sessions/{SID}/actions/", {"action": "start"},
                                      content_type="application/json")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "permission_denied", "fields": {},
                                         "message": f"POST /api/v1/sessions/{SID}/actions/ needs the operator role"}}


@pytest.mark.django_db
def test_a_token_works_without_csrf_until_it_is_revoked(loaded, django_user_model):
    role_user(django_user_model, "bot", "operator")
    out = StringIO()
    call_command("paper_token", "create", "bot", "--name", "nightly script", stdout=out)
    key = out.getvalue().splitlines()[1]
    token = ApiToken.objects.get()
    assert token.prefix == key[:8] and key not in (token.digest, token.prefix)  # only a digest is stored
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")
    started = api.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "from a script"},
                       content_type="application/json")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert ChangeLogEntry.objects.filter(action="session_start", actor="api:bot").exists()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/sessions/").status_code == 200
    call_command("paper_token", "revoke", str(token.pk), "--reason", "rotated", stdout=StringIO())
    refused = api.get("/api/v1/sessions/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"
    assert Client(HTTP_AUTHORIZATION="Token not-a-key").get("/api/v1/sessions/").status_code == 401
    listing = StringIO()
    call_command("paper_token", "list", "bot", stdout=listing)
    assert "revoked" in listing.getvalue() and key not in listing.getvalue()


@pytest.mark.django_db
def test_session_authenticated_writes_need_the_csrf_token(loaded, django_user_model):
    role_user(django_user_model, "olga", "operator")
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="olga", password="pw-olga")
    refused = browser.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    browser.get("/admin/login/")  # a page with a form sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    done = browser.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start"}, content_type="application/json",
                        HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 200


@pytest.mark.django_db
def test_the_root_lists_the_resources_and_old_paths_redirect(loaded):
    root = Client().get("/api/v1/").json()
    assert root["schema"] == "/api/schema/" and root["docs"] == "/api/docs/"
    assert root["resources"]["session-detail"] == "/api/v1/sessions/<slug:session_id>/"
    moved = Client().get("/api/sessions/?lane=paper_research")
    assert moved.status_code == 308 and moved.headers["Location"] == "/api/v1/sessions/?lane=paper_research"
    missing = Client().get("/api/v1/no-such-thing/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_paper_roles_setup_is_idempotent_and_grants_exactly():
    from django.contrib.auth.models import Group

    for _ in range(2):
        call_command("paper_roles", "setup", stdout=StringIO())
    groups = {g.name: sorted(p.codename for p in g.permissions.all()) for g in Group.objects.all()}
    assert groups == {
        "viewer": ["view_papersession"],
        "operator": ["operate_papersession", "view_papersession"],
        "approver": ["approve_promotionrequest", "view_papersession"],
        "admin": ["approve_promotionrequest", "change_lanepolicy", "operate_papersession", "view_papersession"],
    }


@pytest.mark.django_db
def test_an_admin_creates_a_token_in_the_django_admin_sees_its_key_once_and_revokes_it(loaded, django_user_model):
    admin_client = signed_in(role_user(django_user_model, "root", "admin", superuser=True))
    bot = role_user(django_user_model, "bot", "viewer")
    made = admin_client.post("/admin/sessions_app/apitoken/add/", {"user": bot.pk, "name": "dashboard"}, follow=True)
    shown = [str(m) for m in made.context["messages"]]
    key = shown[0].rsplit(": ", 1)[1]
    token = ApiToken.objects.get()
    assert token.prefix == key[:8] and token.created_by == "admin:root"
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/sessions/").status_code == 200
    listing = admin_client.get("/admin/sessions_app/apitoken/").content.decode()
    assert token.prefix in listing and key not in listing  # never shown again
    admin_client.post("/admin/sessions_app/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/sessions/").status_code == 401
    assert ChangeLogEntry.objects.filter(action="api_token_revoke", actor="admin:root").exists()
