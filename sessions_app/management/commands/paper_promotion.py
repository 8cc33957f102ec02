"""Promotion requests (spec §8.2, §9): request → SEL evaluation → four-eyes decision → applied.

    paper_promotion request SESSION_ID --to-lane LANE --as USER --reason TEXT
    paper_promotion request SESSION_ID --registry ID@VERSION --to-status STATUS --as USER --reason TEXT
    paper_promotion request SESSION_ID --envelope LANE --set FIELD=VALUE [--set ...] --as USER --reason TEXT
    paper_promotion request SESSION_ID --policy POLICY_ID --set FIELD=VALUE [--set ...] --as USER --reason TEXT
    paper_promotion approve REQUEST_ID --as USER --reason TEXT [--override REASON]
    paper_promotion reject REQUEST_ID --as USER --reason TEXT
    paper_promotion withdraw REQUEST_ID --as USER --reason TEXT
    paper_promotion list [--status pending|applied|rejected|withdrawn]

``--as`` names a Django user: approvers need the ``approve_promotionrequest`` permission and
can never decide their own requests.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.exceptions import ApplicationError
from ifns_paper.governance import RequestStatus
from sessions_app.models import PromotionRequest
from sessions_app.services.promotions import promotion_decide, promotion_request


class Command(BaseCommand):
    help = "Request, approve, reject, withdraw and list promotion requests."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        req = sub.add_parser("request", help="ask for a lane transition or a registry status change")
        req.add_argument("session_id", help="the evidence session")
        req.add_argument("--to-lane", default=None)
        req.add_argument("--registry", default=None, help="ID@VERSION of a strategy or model")
        req.add_argument("--to-status", default=None)
        req.add_argument("--envelope", default=None, help="a lane whose risk envelope should change")
        req.add_argument("--policy", default=None, help="an execution policy whose parameters should change")
        req.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                         help="a new envelope or policy value (with --envelope or --policy; repeat for several; "
                              "JSON values such as slicing are parsed)")
        for name in ("approve", "reject", "withdraw"):
            p = sub.add_parser(name)
            p.add_argument("request_id", type=int)
            if name == "approve":
                p.add_argument("--override", default="", help="approve against failing evidence, saying why")
        for p in (req, *(sub.choices[n] for n in ("approve", "reject", "withdraw"))):
            p.add_argument("--as", dest="actor", required=True, help="the user acting")
            p.add_argument("--reason", required=True)
        ls = sub.add_parser("list")
        ls.add_argument("--status", choices=[s.value for s in RequestStatus], default=None)
        ls.add_argument("--json", action="store_true")

    def handle(self, *args, action: str, **o) -> None:
        try:
            if action == "request":
                if sum(x is not None for x in (o["to_lane"], o["registry"], o["envelope"], o["policy"])) != 1:
                    raise CommandError("give --to-lane LANE, --registry ID@VERSION --to-status STATUS, "
                                       "--envelope LANE --set FIELD=VALUE or --policy ID --set FIELD=VALUE")
                changes = {}
                for item in o["set"]:
                    name, sep, value = item.partition("=")
                    if not sep:
                        raise CommandError(f"--set {item!r}: expected FIELD=VALUE")
                    try:
                        changes[name.strip()] = json.loads(value) if value.strip()[:1] in "{[" else value.strip()
                    except ValueError as exc:
                        raise CommandError(f"--set {name}: not valid JSON: {exc}") from None
                if o["envelope"] is not None:
                    row = promotion_request(kind="risk_envelope", session_id=o["session_id"],
                                            target={"lane": o["envelope"], "changes": changes},
                                            requested_by=o["actor"], reason=o["reason"])
                elif o["policy"] is not None:
                    row = promotion_request(kind="execution_policy", session_id=o["session_id"],
                                            target={"policy_id": o["policy"], "changes": changes},
                                            requested_by=o["actor"], reason=o["reason"])
                elif o["to_lane"] is not None:
                    row = promotion_request(kind="lane_transition", session_id=o["session_id"],
                                            target={"to_lane": o["to_lane"]}, requested_by=o["actor"],
                                            reason=o["reason"])
                else:
                    registry_id, _, version = o["registry"].partition("@")
                    row = promotion_request(kind="model_status", session_id=o["session_id"],
                                            target={"registry_id": registry_id, "version": version,
                                                    "to_status": o["to_status"]},
                                            requested_by=o["actor"], reason=o["reason"])
                failed = [c["criterion"] for c in row.evaluation.criteria if not c["pass"]]
                self.stdout.write(f"request #{row.pk} ({row.kind}, {row.direction}) is pending; SEL evaluation "
                                  f"#{row.evaluation_id} recommends {row.evaluation.recommendation}"
                                  f"{' (failing: ' + ', '.join(failed) + ')' if failed else ''}")
                return
            if action in ("approve", "reject", "withdraw"):
                row = promotion_decide(request_id=o["request_id"], action=action, actor=o["actor"],
                                       reason=o["reason"], override_reason=o.get("override") or "")
                self.stdout.write(f"request #{row.pk} is {row.status}"
                                  f"{'; override: ' + row.override_reason if row.override_reason else ''}"
                                  f"{'; ' + json.dumps(row.result) if row.result else ''}")
                return
        except ApplicationError as exc:
            raise CommandError(exc.described()) from None
        rows = PromotionRequest.objects.select_related("session", "evaluation")
        if o["status"]:
            rows = rows.filter(status=o["status"])
        if o["json"]:
            self.stdout.write(json.dumps([r.as_record() for r in rows], indent=2))
            return
        for r in rows:
            self.stdout.write(f"#{r.pk} {r.created_at:%Y-%m-%d %H:%M}Z {r.kind:15} {r.status:9} {r.session.session_id} "
                              f"{json.dumps(r.target)} by {r.requested_by}; SEL {r.evaluation.recommendation}"
                              f"{'; decided by ' + r.decided_by if r.decided_by else ''}"
                              f"{'; override: ' + r.override_reason if r.override_reason else ''}")
