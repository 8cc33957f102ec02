"""Load and validate a configuration directory.

Every problem is collected (not just the first) and reported as
``file:line: field.path: message``; line numbers come from the YAML node
tree (JSON is read with ``json`` for its data and composed with PyYAML for
its line marks). Nothing here writes anywhere: callers apply a bundle only
when ``load_config_dir`` returned one, i.e. when every file is valid.

Layout (relative to the config directory)::

    environments/paper.yaml               environment, lanes, envelopes, promotion rules
    registry/models.yaml                  model/strategy registry entries
    policies/execution_routes.json        routes → simulation behaviour (Default Parameters Registry)
    policies/execution_policies.json      execution policies → order type, route, slicing
    paper_trading/session_<name>.yaml     paper session definitions
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ifns_paper.config.schema import (
    BacktestEndState,
    FromBacktest,
    LanePolicySpec,
    PaperEnvironmentFile,
    PoliciesFile,
    RegistryFile,
    ReplayFeed,
    RoutesFile,
    SessionDefinition,
)
from ifns_paper.engine.msi import load_callable

ENVIRONMENT_FILE = Path("environments/paper.yaml")
REGISTRY_FILE = Path("registry/models.yaml")
ROUTES_FILE = Path("policies/execution_routes.json")
POLICIES_FILE = Path("policies/execution_policies.json")
SESSIONS_DIR = Path("paper_trading")
SESSION_FILE_PATTERN = re.compile(r"^session_[a-z0-9_]+\.yaml$")
#: replay feed files are relative to the repository (where ``data/market/`` lives)
REPO_ROOT = Path(__file__).resolve().parents[2]

#: lanes outside the paper environment that a paper lane may promote to (Stage 07)
EXTERNAL_PROMOTION_TARGETS = frozenset({"live_canary"})

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, order=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more configuration problems; ``problems`` lists each."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.path, p.message))
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} configuration problem(s):\n{lines}")


@dataclass
class ConfigBundle:
    """A fully validated configuration directory."""

    root: Path
    environment: PaperEnvironmentFile
    registry: RegistryFile
    routes: RoutesFile
    policies: PoliciesFile
    #: session definitions keyed by session_id, with the file each came from
    sessions: dict[str, tuple[str, SessionDefinition]] = field(default_factory=dict)
    #: initial portfolios keyed by the path written in the session file
    backtest_states: dict[str, BacktestEndState] = field(default_factory=dict)


# --- documents with line marks ---------------------------------------------------------


@dataclass
class _Document:
    label: str  # how the file is named in messages
    data: Any
    node: yaml.Node | None  # composed tree, for line numbers

    def locate(self, loc: Loc) -> tuple[int | None, str]:
        """Line and dotted path for a pydantic-style location.

        Location parts that are not keys of the document (discriminator tags
        pydantic inserts for unions) are skipped; a final part that is missing
        (a required field) is reported on its parent's line.
        """
        node, line, parts = self.node, None, []
        if node is not None:
            line = node.start_mark.line + 1
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            child = _child(node, part)
            if child is not None:
                key_line, node = child
                line = key_line
                parts.append(part)
            elif last or not isinstance(node, yaml.MappingNode):
                parts.append(part)
                node = None
            # else: a union tag, not a key: skip it
        return line, _dotted(parts)


def _child(node: yaml.Node | None, part: str | int) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key.start_mark.line + 1, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


def _dotted(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _duplicate_keys(node: yaml.Node | None, label: str, loc: Loc = ()) -> list[ConfigProblem]:
    """YAML and JSON both let a repeated key silently win; we refuse it."""
    problems: list[ConfigProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name in seen:
                problems.append(
                    ConfigProblem(label, key.start_mark.line + 1, _dotted((*loc, name)),
                                  "key appears more than once")
                )
            seen.add(name)
            problems += _duplicate_keys(value, label, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, label, (*loc, i))
    return problems


def _read(path: Path, label: str, problems: list[ConfigProblem]) -> _Document | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(ConfigProblem(label, None, "", "file is missing"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(label, None, "", f"cannot read file: {exc}"))
        return None

    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(ConfigProblem(label, exc.lineno, "", f"invalid JSON: {exc.msg}"))
            return None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            reason = getattr(exc, "problem", None) or str(exc)
            problems.append(ConfigProblem(label, mark.line + 1 if mark else None, "",
                                          f"invalid YAML: {reason}"))
            return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        node = None  # valid JSON PyYAML cannot compose (e.g. tab indents): no line numbers
    if not isinstance(data, dict):
        problems.append(ConfigProblem(label, 1, "", "top level must be a mapping"))
        return None
    dupes = _duplicate_keys(node, label)
    if dupes:
        problems.extend(dupes)
        return None
    return _Document(label, data, node)


def _validate(model: type[M], doc: _Document, problems: list[ConfigProblem]) -> M | None:
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            line, path = doc.locate(tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field (check the spelling)"
            problems.append(ConfigProblem(doc.label, line, path, message))
        return None


# --- the directory ---------------------------------------------------------------------


def load_config_dir(
    root: Path | str,
    *,
    label_root: str | None = None,
    extra_session_files: Sequence[Path | str] = (),
) -> ConfigBundle:
    """Validate every file under ``root`` and their cross-references.

    Returns a :class:`ConfigBundle` or raises :class:`ConfigError` listing
    every problem found. ``label_root`` is how the directory is named in
    messages (default: ``root`` as given). ``extra_session_files`` are
    session definitions kept outside ``paper_trading/``, validated against
    the same directory.
    """
    root = Path(root)
    shown = label_root if label_root is not None else str(root)

    def label(rel: Path) -> str:
        return str(Path(shown) / rel)

    problems: list[ConfigProblem] = []
    if not root.is_dir():
        raise ConfigError([ConfigProblem(shown, None, "", "configuration directory not found")])

    docs = {
        rel: _read(root / rel, label(rel), problems)
        for rel in (ENVIRONMENT_FILE, REGISTRY_FILE, ROUTES_FILE, POLICIES_FILE)
    }
    env = _validate(PaperEnvironmentFile, docs[ENVIRONMENT_FILE], problems) if docs[ENVIRONMENT_FILE] else None
    registry = _validate(RegistryFile, docs[REGISTRY_FILE], problems) if docs[REGISTRY_FILE] else None
    routes = _validate(RoutesFile, docs[ROUTES_FILE], problems) if docs[ROUTES_FILE] else None
    policies = _validate(PoliciesFile, docs[POLICIES_FILE], problems) if docs[POLICIES_FILE] else None

    session_files: list[tuple[Path, str]] = []
    sessions_dir = root / SESSIONS_DIR
    if sessions_dir.is_dir():
        for path in sorted(sessions_dir.iterdir()):
            if not path.name.startswith(".") and not path.is_dir():
                session_files.append((path, label(SESSIONS_DIR / path.name)))
    known_paths = {path.resolve() for path, _ in session_files}
    for extra in extra_session_files:
        if Path(extra).resolve() not in known_paths:
            session_files.append((Path(extra), str(extra)))

    session_docs: list[tuple[_Document, SessionDefinition]] = []
    for path, shown_as in session_files:
        if not SESSION_FILE_PATTERN.match(path.name):
            problems.append(ConfigProblem(shown_as, None, "",
                                          "session files are named session_<name>.yaml"))
            continue
        doc = _read(path, shown_as, problems)
        definition = _validate(SessionDefinition, doc, problems) if doc else None
        if doc and definition:
            session_docs.append((doc, definition))

    bundle = None
    if env and registry and routes and policies:
        bundle = ConfigBundle(root=root, environment=env, registry=registry, routes=routes,
                              policies=policies)
        problems += _check_references(bundle, docs, session_docs)
    if problems:
        raise ConfigError(problems)
    assert bundle is not None
    return bundle


def _check_references(
    bundle: ConfigBundle,
    docs: dict[Path, _Document | None],
    session_docs: list[tuple[_Document, SessionDefinition]],
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def problem(doc: _Document, loc: Loc, message: str) -> None:
        line, path = doc.locate(loc)
        problems.append(ConfigProblem(doc.label, line, path, message))

    env_doc, policies_doc = docs[ENVIRONMENT_FILE], docs[POLICIES_FILE]
    assert env_doc and policies_doc
    lanes = bundle.environment.lanes
    feeds = bundle.environment.environment.feeds
    kinds = {}
    versions: dict[str, list[str]] = {}
    for entry in bundle.registry.entries:
        kinds[entry.registry_id] = entry.kind
        versions.setdefault(entry.registry_id, []).append(entry.version)

    def known(names: Iterable[str]) -> str:
        return ", ".join(sorted(names)) or "none"

    carried = _check_feeds(feeds, env_doc, problem)

    # Registry: a model's own code must import and be callable; strategies have no code here.
    registry_doc = docs.get(REGISTRY_FILE)
    for i, entry in enumerate(bundle.registry.entries):
        if not entry.implementation or registry_doc is None:
            continue
        if entry.kind != "model":
            problem(registry_doc, ("entries", i, "implementation"), "only models have an implementation")
            continue
        try:
            load_callable(entry.implementation)
        except ValueError as exc:
            problem(registry_doc, ("entries", i, "implementation"), str(exc))

    # Lanes: promotion targets and the registry entries they allow.
    for name, lane in lanes.items():
        for loc, message in lane_policy_problems(name, lane, kinds=kinds, lanes=set(lanes)):
            problem(env_doc, ("lanes", name, *loc), message)

    # Policies: routes must exist.
    for pid, policy in bundle.policies.policies.items():
        if policy.route not in bundle.routes.routes:
            problem(policies_doc, ("policies", pid, "route"),
                    f"unknown route {policy.route!r} (known: {known(bundle.routes.routes)})")

    # Sessions: every reference must resolve and be allowed in the session's lane.
    seen_ids: dict[str, str] = {}
    entries = {(e.registry_id, e.version): e for e in bundle.registry.entries}
    for doc, definition in session_docs:
        sid = definition.session_id
        if sid in seen_ids:
            problem(doc, ("session_id",), f"session_id {sid!r} is already defined in {seen_ids[sid]}")
            continue
        seen_ids[sid] = doc.label
        lane = lanes.get(definition.lane)
        if lane is None:
            problem(doc, ("lane",), f"unknown lane {definition.lane!r} (known: {known(lanes)})")
        refs: list[tuple[Loc, str, str, str]] = [
            (("strategy",), definition.strategy.registry_id, definition.strategy.version, "strategy"),
            *[(("models", i), m.registry_id, m.version, "model") for i, m in enumerate(definition.models)],
        ]
        for loc, rid, version, kind in refs:
            entry = entries.get((rid, version))
            if rid not in kinds:
                problem(doc, (*loc, "registry_id"), f"unknown registry id {rid!r}")
                continue
            if kinds[rid] != kind:
                problem(doc, (*loc, "registry_id"), f"{rid!r} is a {kinds[rid]}, not a {kind}")
                continue
            if entry is None:
                problem(doc, (*loc, "version"),
                        f"{rid!r} has no version {version} (known: {known(versions[rid])})")
                continue
            if entry.status == "retired":
                problem(doc, (*loc, "version"), f"{rid}@{version} is retired")
            if lane is None:
                continue
            allowed = lane.allowed_strategies if kind == "strategy" else lane.allowed_models
            if rid not in allowed:
                problem(doc, (*loc, "registry_id"),
                        f"{kind} {rid!r} is not allowed in lane {definition.lane!r} "
                        f"(allowed: {known(allowed)})")
        if definition.execution_policy not in bundle.policies.policies:
            problem(doc, ("execution_policy",),
                    f"unknown execution policy {definition.execution_policy!r} "
                    f"(known: {known(bundle.policies.policies)})")
        feed = feeds.get(definition.feed)
        if feed is None:
            problem(doc, ("feed",), f"unknown feed {definition.feed!r} (known: {known(feeds)})")
        else:
            for i, symbol in enumerate(definition.symbols):
                if definition.feed in carried and symbol not in carried[definition.feed]:
                    problem(doc, ("symbols", i),
                            f"feed {definition.feed!r} does not carry {symbol} "
                            f"(it carries: {known(carried[definition.feed])})")
        portfolio = definition.start.portfolio
        if isinstance(portfolio, FromBacktest):
            state = _load_backtest_state(bundle.root, portfolio.from_backtest, doc, problem)
            if state is not None:
                if lane is not None and state.currency != lane.capital.currency:
                    problem(doc, ("start", "portfolio", "from_backtest"),
                            f"backtest currency {state.currency} differs from lane currency "
                            f"{lane.capital.currency}")
                bundle.backtest_states[portfolio.from_backtest] = state
        bundle.sessions[sid] = (doc.label, definition)
    return problems


def resolve_feed_file(file: str) -> Path:
    """A replay feed's ``file``: absolute, or relative to the repository root."""
    path = Path(file)
    return path if path.is_absolute() else REPO_ROOT / path


def _check_feeds(feeds: dict, env_doc: _Document, problem) -> dict[str, tuple[str, ...]]:
    """Replay files must exist and import cleanly, and carry the symbols asked for.

    Returns the symbols each feed carries (a feed whose file is broken is left out, so
    sessions on it are not reported twice)."""
    from ifns_paper.engine.marketdata import MarketDataError
    from ifns_paper.feeds.replay import file_symbols

    carried: dict[str, tuple[str, ...]] = {}
    for name, feed in feeds.items():
        if not isinstance(feed, ReplayFeed):
            carried[name] = tuple(feed.symbols)
            continue
        loc = ("environment", "feeds", name)
        path = resolve_feed_file(feed.file)
        if not path.is_file():
            problem(env_doc, (*loc, "file"), f"file not found: {feed.file} (looked at {path})")
            continue
        try:
            in_file = file_symbols(path)
        except (MarketDataError, OSError) as exc:
            problem(env_doc, (*loc, "file"), f"cannot replay {feed.file}: {exc}")
            continue
        if not in_file:
            problem(env_doc, (*loc, "file"), f"cannot replay {feed.file}: it has no data rows")
            continue
        if feed.symbols is None:
            carried[name] = in_file
            continue
        for i, symbol in enumerate(feed.symbols):
            if symbol not in in_file:
                problem(env_doc, (*loc, "symbols", i),
                        f"{feed.file} has no rows of {symbol} (it has: {', '.join(in_file)})")
        carried[name] = tuple(s for s in feed.symbols if s in in_file)
    return carried


def load_routes_file(path: Path | str) -> RoutesFile:
    """Validate one ``execution_routes.json`` on its own (e.g. for ``paper_replay``)."""
    problems: list[ConfigProblem] = []
    doc = _read(Path(path), str(path), problems)
    routes = _validate(RoutesFile, doc, problems) if doc else None
    if problems or routes is None:
        raise ConfigError(problems)
    return routes


def lane_policy_problems(
    lane: str, spec: LanePolicySpec, *, kinds: dict[str, str], lanes: set[str]
) -> list[tuple[Loc, str]]:
    """Cross-reference problems of one lane policy: (location in the lane, message).

    Shared by the file loader and the Django admin, so both apply the same rules.
    ``kinds`` maps registry ids to ``strategy``/``model``; ``lanes`` names the paper lanes.
    """
    out: list[tuple[Loc, str]] = []
    target = spec.promotion.promotes_to
    targets = sorted({*lanes, *EXTERNAL_PROMOTION_TARGETS} - {lane})
    if target == lane:
        out.append((("promotion", "promotes_to"), "a lane cannot promote to itself"))
    elif target not in lanes and target not in EXTERNAL_PROMOTION_TARGETS:
        out.append((("promotion", "promotes_to"), f"unknown lane {target!r} (known: {', '.join(targets)})"))
    for key, kind in (("allowed_strategies", "strategy"), ("allowed_models", "model")):
        for i, rid in enumerate(getattr(spec, key)):
            if rid not in kinds:
                out.append(((key, i), f"unknown registry id {rid!r}"))
            elif kinds[rid] != kind:
                out.append(((key, i), f"{rid!r} is a {kinds[rid]}, not a {kind}"))
    return out


def _load_backtest_state(root: Path, rel: str, doc: _Document, problem) -> BacktestEndState | None:
    loc: Loc = ("start", "portfolio", "from_backtest")
    path = (root / rel).resolve()
    if not path.is_file():
        problem(doc, loc, f"backtest end-state file not found: {rel}")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BacktestEndState.model_validate(data)
    except json.JSONDecodeError as exc:
        problem(doc, loc, f"{rel}:{exc.lineno}: invalid JSON: {exc.msg}")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        problem(doc, loc, f"{rel}: {_dotted(first['loc'])}: {first['msg']}")
    return None
