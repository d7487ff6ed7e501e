"""Container resources for the Kubernetes API emulator: quantities, requests and limits.

What the real API server, scheduler and kubelet do with ``resources`` that a launcher can
trip over:

* a malformed quantity (``"4GBs"``) cannot be decoded: 400 BadRequest;
* a negative quantity, a request above its limit, or an extended resource (a GPU) whose
  request differs from its limit: 422 Invalid, with the API server's field paths and texts;
* requests default to the limits where only limits are given (pod defaulting);
* a pod requesting more of a resource than the node has stays Pending, ``Unschedulable``
  with ``0/1 nodes are available: 1 Insufficient cpu``;
* a container whose processes use more memory than its limit is killed: ``OOMKilled``,
  exit code 137.

Guess/deviation: quantities in messages are echoed as given, not in the API server's
canonical form (``"1.5"`` is not shown as ``"1500m"``); the node's free capacity is not
reduced by other pods' requests (each pod is checked against the whole node).
"""

from __future__ import annotations

import os
import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import psutil

__all__ = [
    "QuantityError",
    "decode_error",
    "default_node_capacity",
    "default_requests",
    "insufficient",
    "memory_limit",
    "parse_quantity",
    "resource_causes",
    "tree_rss",
]

#: The API server's pattern for quantities (apimachinery ``resource.Quantity``).
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIXES: dict[str, Decimal] = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
    "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}
_EXPONENT = re.compile(r"^[eE][-+]?[0-9]+$")
#: Resources a node may promise more of than it has (requests below limits allowed).
_OVERCOMMITTABLE = ("cpu", "memory", "ephemeral-storage")


class QuantityError(ValueError):
    """A quantity the API server cannot decode (its message is the apimachinery one)."""


#: The arithmetic's own context: not the calling thread's, which a program (or a test) may have
#: set to trap inexact results or to a few digits.
_CONTEXT = Context(prec=60)


def parse_quantity(value: Any) -> Decimal:
    """The value of a quantity (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824, ``2`` -> 2).

    Raises:
        QuantityError: not a quantity, with the API server's message.
    """
    text = str(value)
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    number, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise QuantityError("unable to parse numeric part of quantity") from None
    if suffix in _SUFFIXES:
        return _CONTEXT.multiply(amount, _SUFFIXES[suffix])
    if _EXPONENT.match(suffix):
        return _CONTEXT.multiply(amount, _CONTEXT.power(Decimal(10), int(suffix[1:])))
    raise QuantityError("unable to parse quantity's suffix")


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pod_spec.get("containers") or [] if isinstance(c, dict)]


def _sections(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = container.get("resources") or {}
    return {k: dict(resources.get(k) or {}) for k in ("requests", "limits")}


def decode_error(pod_spec: dict[str, Any]) -> str | None:
    """Why the API server cannot decode the containers' resources (a bad quantity), or None."""
    for container in _containers(pod_spec):
        for values in _sections(container).values():
            for quantity in values.values():
                try:
                    parse_quantity(quantity)
                except QuantityError as exc:
                    return str(exc)
    return None


def resource_causes(pod_spec: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """The API server's validation errors of the containers' resources, as ``(field, message)``.

    ``path`` is the pod spec's field path (``spec.template.spec``). Quantities must parse
    (see :func:`decode_error`).
    """
    causes: list[tuple[str, str]] = []
    for i, container in enumerate(_containers(pod_spec)):
        base = f"{path}.containers[{i}].resources"
        sections = _sections(container)
        for section, values in sections.items():
            for name, quantity in values.items():
                if parse_quantity(quantity) < 0:
                    causes.append((f"{base}.{section}[{name}]", f'Invalid value: "{quantity}": must be greater than or equal to 0'))
        limits = sections["limits"]
        for name, quantity in sections["requests"].items():
            if name not in limits:
                continue
            request, limit = parse_quantity(quantity), parse_quantity(limits[name])
            if name not in _OVERCOMMITTABLE and not name.startswith("hugepages-") and request != limit:
                causes.append((f"{base}.requests", f'Invalid value: "{quantity}": must be equal to {name} limit of {limits[name]}'))
            elif request > limit:
                causes.append(
                    (f"{base}.requests", f'Invalid value: "{quantity}": must be less than or equal to {name} limit of {limits[name]}')
                )
    return causes


def default_requests(pod_spec: dict[str, Any]) -> None:
    """Pod defaulting: a resource with a limit and no request gets the limit as its request."""
    for container in _containers(pod_spec):
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        if limits:
            requests = resources.setdefault("requests", {})
            for name, quantity in limits.items():
                requests.setdefault(name, quantity)


def insufficient(pod_spec: dict[str, Any], capacity: dict[str, Any]) -> list[str]:
    """The resources the pod's containers request more of, together, than the node has."""
    total: dict[str, Decimal] = {}
    for container in _containers(pod_spec):
        sections = _sections(container)
        requests = {**sections["limits"], **sections["requests"]}  # requests default to limits
        for name, quantity in requests.items():
            total[name] = _CONTEXT.add(total.get(name, Decimal(0)), parse_quantity(quantity))
    return sorted(
        name for name, amount in total.items()
        if amount > 0 and amount > parse_quantity(capacity.get(name, 0))
    )


def memory_limit(pod_spec: dict[str, Any]) -> int | None:
    """The first container's memory limit in bytes, or None."""
    containers = _containers(pod_spec)
    limit = _sections(containers[0])["limits"].get("memory") if containers else None
    return int(parse_quantity(limit)) if limit is not None else None


def default_node_capacity() -> dict[str, str]:
    """The single emulated node's capacity: this machine's CPUs and memory, 110 pods."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": str(os.cpu_count() or 1), "memory": str(memory), "pods": "110"}


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants, in bytes (0 if it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # exited meanwhile: it uses no memory any more
            continue
    return total
