"""Cloud Logging v2 ``entries:list`` over the output of the Cloud Run emulator's tasks.

Cloud Run sends what a job's task writes to Cloud Logging, one entry per line, with the
``cloud_run_job`` monitored resource (labels ``job_name``, ``location``, ``project_id``) and
the entry labels ``run.googleapis.com/execution_name``, ``run.googleapis.com/task_index``
and ``run.googleapis.com/task_attempt``. :class:`TaskLogStore` does the same with the
output the :class:`~pycrew_emulators.runner.JobRunner` keeps: the emulator registers every
task attempt it starts (:meth:`TaskLogStore.track`), its monitor thread turns new complete
lines into entries about ten times a second (:meth:`TaskLogStore.collect`; a request
collects first too), and ``POST /v2/entries:list`` answers from them
(:meth:`TaskLogStore.list_entries`) in the REST API's JSON: request fields
``resourceNames``, ``projectIds``, ``filter``, ``orderBy``, ``pageSize``, ``pageToken``;
reply ``entries[]`` and ``nextPageToken``.

Filters: only an ``AND`` of comparisons is understood, each ``FIELD = VALUE`` (a value
quoted with ``"`` or bare) for the fields ``resource.type``, ``resource.labels.KEY``,
``labels.KEY`` / ``labels."KEY"`` and ``logName``, and ``timestamp`` with ``=``, ``<``,
``<=``, ``>``, ``>=`` and an RFC 3339 time (google-cloud-logging's ``list_entries`` adds
``timestamp>="<a day ago>"`` unless the filter names ``timestamp``). Anything else (``OR``,
``NOT``, ``:``, ``!=``, regular expressions, parentheses, free text) is refused with
400 ``INVALID_ARGUMENT`` saying what the emulator supports, never silently ignored.

Deviations from the real service:

* An entry's ``timestamp`` is when the emulator read the line (within about 0.1 s of the
  write), not when the task wrote it; ``receiveTimestamp`` is the same time.
* The runner interleaves stdout and stderr in one file, so every entry is in the log
  ``run.googleapis.com%2Fstdout`` with severity ``DEFAULT``. GUESS: Cloud Run gives
  stderr lines their own log (``run.googleapis.com%2Fstderr``).
* There is no log-based retention: entries live as long as the emulator.
* No system entries (``run.googleapis.com%2Fvarlog%2Fsystem``: "Container called exit").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrew_emulators.runner import JobRunner

__all__ = ["InvalidLogQuery", "TaskLogStore"]

#: Labels of a Cloud Run job task's log entries.
EXECUTION_LABEL = "run.googleapis.com/execution_name"
TASK_INDEX_LABEL = "run.googleapis.com/task_index"
TASK_ATTEMPT_LABEL = "run.googleapis.com/task_attempt"
#: Documented for entries.list: default 50; a negative size or one above 1000 is rejected.
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 1000
ORDERS = ("timestamp asc", "timestamp desc")
_REQUEST_FIELDS = frozenset({"resourceNames", "projectIds", "filter", "orderBy", "pageSize", "pageToken"})
#: What the filter parser understands, for the 400 message.
SUPPORTED = (
    'an AND of FIELD="VALUE" comparisons of resource.type, resource.labels.KEY, labels.KEY or labels."KEY", '
    'logName, and timestamp (=, <, <=, >, >= an RFC 3339 time)'
)
# One comparison: a field path (labels keys may be quoted), an operator, a quoted or bare value.
_TERM = re.compile(
    r'\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"]+"))*)'
    r'\s*(?P<op>>=|<=|=|>|<)\s*'
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^\s"()]+)\s*'
)
_AND = re.compile(r"AND\s+")
# Resource containers and log views entries.list accepts; only projects hold entries here.
_RESOURCE_NAME = re.compile(r"^(?P<kind>projects|organizations|folders|billingAccounts)/(?P<id>[^/]+)(?:/locations/[^/]+/buckets/[^/]+/views/[^/]+)?$")


class InvalidLogQuery(ValueError):
    """An entries:list request the emulator refuses (400 ``INVALID_ARGUMENT``); the message says why."""


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Attempt:
    """One task attempt whose output becomes entries."""

    run_id: str
    resource: dict[str, Any]
    labels: dict[str, str]
    read: int = 0  # characters of the output already turned into entries
    done: bool = False


@dataclass(frozen=True)
class _Entry:
    seq: int
    time: float
    text: str
    project: str
    resource: dict[str, Any]
    labels: dict[str, str]

    def field(self, path: tuple[str, ...]) -> str | None:
        """The value of a filter field (see :func:`_field_path`); ``None``: the entry has no such field."""
        match path:
            case ("resource", "type"):
                return str(self.resource["type"])
            case ("resource", "labels", key):
                value = self.resource["labels"].get(key)
                return None if value is None else str(value)
            case ("labels", key):
                return self.labels.get(key)
            case ("logName",):
                return self.log_name
        return None

    @property
    def log_name(self) -> str:
        return f"projects/{self.project}/logs/run.googleapis.com%2Fstdout"

    def render(self) -> dict[str, Any]:
        """The entry in the REST API's JSON (a ``LogEntry``)."""
        stamp = _rfc3339(self.time)
        return {
            "textPayload": self.text,
            "insertId": f"{self.seq:016x}",
            "resource": self.resource,
            "timestamp": stamp,
            "receiveTimestamp": stamp,
            "severity": "DEFAULT",
            "labels": self.labels,
            "logName": self.log_name,
        }


@dataclass
class _Query:
    projects: set[str]
    tests: list[Callable[[_Entry], bool]] = field(default_factory=list)
    descending: bool = False
    page_size: int = PAGE_SIZE_DEFAULT
    after: int | None = None  # the seq of the previous page's last entry


class TaskLogStore:
    """The log entries of a Cloud Run emulator's tasks, and ``entries:list`` over them. Thread-safe.

    Args:
        runner: the runner whose runs' output the entries come from.
    """

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self._lock = threading.Lock()
        self._collect_lock = threading.Lock()
        self._attempts: dict[str, _Attempt] = {}
        self._entries: list[_Entry] = []
        self._last_time = 0.0

    def track(self, run_id: str, execution: str, index: int, attempt: int) -> None:
        """Make entries of the output of runner run ``run_id``: attempt ``attempt`` of task ``index`` of ``execution``.

        Args:
            execution: the execution's full name (``projects/P/locations/L/jobs/J/executions/E``).
        """
        parts = execution.split("/")
        project, location, job, execution_id = parts[1], parts[3], parts[5], parts[7]
        resource = {"type": "cloud_run_job", "labels": {"job_name": job, "location": location, "project_id": project}}
        labels = {EXECUTION_LABEL: execution_id, TASK_INDEX_LABEL: str(index), TASK_ATTEMPT_LABEL: str(attempt)}
        with self._lock:
            self._attempts[run_id] = _Attempt(run_id, resource, labels)

    def collect(self) -> None:
        """Turn the new complete lines of every unfinished attempt into entries (and the last line of an ended one)."""
        with self._collect_lock:  # one reader at a time, so no line is read twice
            with self._lock:
                pending = [a for a in self._attempts.values() if not a.done]
            for attempt in pending:
                ended = self.runner.state(attempt.run_id).done  # the state first: no output follows an end
                fresh = self.runner.logs(attempt.run_id)[attempt.read :]
                if ended:
                    lines = fresh.split("\n")
                    if not lines[-1]:
                        lines.pop()
                    attempt.read += len(fresh)
                    attempt.done = True
                else:
                    # Only complete lines: what follows the last newline may be half written.
                    cut = fresh.rfind("\n")
                    lines = fresh[:cut].split("\n") if cut >= 0 else []
                    attempt.read += cut + 1
                if lines:
                    with self._lock:
                        self._add(attempt, lines)

    def _add(self, attempt: _Attempt, lines: list[str]) -> None:
        """Append entries (lock held); times never go backwards, so seq order is time order."""
        now = max(time.time(), self._last_time)
        self._last_time = now
        project = attempt.resource["labels"]["project_id"]
        for line in lines:
            self._entries.append(_Entry(len(self._entries), now, line, project, attempt.resource, dict(attempt.labels)))

    def entries(self) -> list[dict[str, Any]]:
        """Every entry so far, oldest first, as the API renders it (a test helper)."""
        self.collect()
        with self._lock:
            return [e.render() for e in self._entries]

    def list_entries(self, body: bytes) -> str:
        """Answer ``POST /v2/entries:list``; return the reply's JSON.

        Raises:
            InvalidLogQuery: the request is malformed or asks for something the emulator
                does not support (see the module docstring).
        """
        query = parse_request(body)
        self.collect()
        with self._lock:
            found = [e for e in self._entries if e.project in query.projects and all(t(e) for t in query.tests)]
        if query.descending:
            found.reverse()
        if query.after is not None:
            after = query.after
            found = [e for e in found if (e.seq < after if query.descending else e.seq > after)]
        page = found[: query.page_size]
        reply: dict[str, Any] = {}
        if page:
            reply["entries"] = [e.render() for e in page]
        if len(found) > len(page):
            reply["nextPageToken"] = f"after-{page[-1].seq}"
        return json.dumps(reply)


def parse_request(body: bytes) -> _Query:
    """An entries:list request body as a query.

    Raises:
        InvalidLogQuery: see :meth:`TaskLogStore.list_entries`.
    """
    try:
        request = json.loads(body.decode() or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidLogQuery(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(request, dict):
        raise InvalidLogQuery("Invalid JSON payload received. The request body must be a JSON object.")
    unknown = sorted(set(request) - _REQUEST_FIELDS)
    if unknown:
        raise InvalidLogQuery(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    names = _strings(request, "resourceNames")
    projects = {f"projects/{p}" for p in _strings(request, "projectIds")}
    if not names and not projects:
        raise InvalidLogQuery("resourceNames: at least one resource name is required (e.g. projects/PROJECT_ID).")
    query = _Query(projects=set())
    for name in [*names, *projects]:
        match = _RESOURCE_NAME.match(name)
        if match is None:
            raise InvalidLogQuery(f"resourceNames: invalid resource name {name!r}; expected projects/PROJECT_ID (or a log view).")
        if match["kind"] == "projects":  # organizations, folders, billing accounts hold no entries here
            query.projects.add(match["id"])
    order = request.get("orderBy") or "timestamp asc"
    if order not in ORDERS:
        raise InvalidLogQuery(f"orderBy: invalid value {order!r}; supported: {', '.join(repr(o) for o in ORDERS)}.")
    query.descending = order == "timestamp desc"
    size = request.get("pageSize", PAGE_SIZE_DEFAULT)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= PAGE_SIZE_MAX:
        raise InvalidLogQuery(f"pageSize: must be an integer from 0 to {PAGE_SIZE_MAX}, got {size!r}.")
    query.page_size = size or PAGE_SIZE_DEFAULT
    token = request.get("pageToken") or ""
    if token:
        if not isinstance(token, str) or not re.fullmatch(r"after-[0-9]+", token):
            raise InvalidLogQuery(f"pageToken: invalid page token {token!r}; pass the nextPageToken of the previous reply.")
        query.after = int(token.removeprefix("after-"))
    text = request.get("filter") or ""
    if not isinstance(text, str):
        raise InvalidLogQuery(f"filter: must be a string, got {text!r}.")
    query.tests = parse_filter(text)
    return query


def _strings(request: dict[str, Any], key: str) -> list[str]:
    value = request.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidLogQuery(f"{key}: must be a list of strings, got {value!r}.")
    return value


def parse_filter(text: str) -> list[Callable[[_Entry], bool]]:
    """The tests of a filter (an AND of comparisons; see the module docstring).

    Raises:
        InvalidLogQuery: the filter uses anything else, saying which part and what is supported.
    """
    tests: list[Callable[[_Entry], bool]] = []
    pos = 0
    while text[pos:].strip():
        if tests:
            joint = _AND.match(text, pos)
            if joint is None:
                raise _unsupported(text, pos)
            pos = joint.end()
        match = _TERM.match(text, pos)
        if match is None:
            raise _unsupported(text, pos)
        tests.append(_comparison(match["field"], match["op"], _unquote(match["value"]), text))
        pos = match.end()
    return tests


def _unsupported(text: str, pos: int) -> InvalidLogQuery:
    rest = text[pos:].strip()
    where = f"{rest!r} in filter {text!r}" if rest != text.strip() else f"filter {text!r}"
    return InvalidLogQuery(
        f"Unsupported filter: the Cloud Run emulator's entries:list understands only {SUPPORTED}; "
        f"cannot use {where}. Simplify the filter (the real Cloud Logging API accepts more)."
    )


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _field_path(path: str) -> tuple[str, ...] | None:
    """``labels."run.googleapis.com/task_index"`` -> ``("labels", "run.googleapis.com/task_index")``; ``None``: unsupported."""
    parts = tuple(p.strip('"') for p in re.findall(r'"[^"]+"|[^."]+', path))
    match parts:
        case ("resource", "type") | ("resource", "labels", _) | ("labels", _) | ("logName",):
            return parts
    return None


def _comparison(path: str, op: str, value: str, text: str) -> Callable[[_Entry], bool]:
    if path == "timestamp":
        bound = _parse_time(value, text)
        compare: dict[str, Callable[[float], bool]] = {
            "=": lambda t: t == bound, "<": lambda t: t < bound, "<=": lambda t: t <= bound,
            ">": lambda t: t > bound, ">=": lambda t: t >= bound,
        }
        check = compare[op]
        return lambda e: check(e.time)
    parts = _field_path(path)
    if parts is None or op != "=":
        raise InvalidLogQuery(
            f"Unsupported filter: the Cloud Run emulator's entries:list understands only {SUPPORTED}; "
            f"cannot use {path}{op}{value!r} in filter {text!r}. Simplify the filter (the real Cloud Logging API accepts more)."
        )
    return lambda e: e.field(parts) == value


def _parse_time(value: str, text: str) -> float:
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidLogQuery(f"Invalid timestamp {value!r} in filter {text!r}: use an RFC 3339 time such as 2024-05-01T12:00:00Z.") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()
