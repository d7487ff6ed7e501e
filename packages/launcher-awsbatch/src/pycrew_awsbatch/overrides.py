"""Where the worker's command, environment and resources go in a SubmitJob request.

Container job definitions (EC2/Fargate) take them in ``containerOverrides``; ECS-properties
job definitions in the first container of ``ecsPropertiesOverride``; EKS job definitions in
the first container of ``eksPropertiesOverride`` (merged into the user's pass-through
override, if any).
"""

from __future__ import annotations

import copy
from typing import Any

from pycrew_awsbatch.options import AwsBatchOptions, memory_mebibytes


def env_list(env: dict[str, str]) -> list[dict[str, str]]:
    """``{"A": "1"}`` as AWS's ``[{"name": "A", "value": "1"}]``."""
    return [{"name": k, "value": v} for k, v in env.items()]


def container_override(options: AwsBatchOptions, command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """``containerOverrides`` of a container job definition."""
    out: dict[str, Any] = {"command": command, "environment": env_list(env)}
    if options.resource_requirements():
        out["resourceRequirements"] = options.resource_requirements()
    return out


def _first(holder: dict[str, Any], key: str) -> dict[str, Any]:
    """``holder[key][0]``, created (as ``[{}]``) if missing or empty."""
    items = holder.get(key) or [{}]
    holder[key] = items
    first: dict[str, Any] = items[0]
    return first


def ecs_override(options: AwsBatchOptions, base: dict[str, Any], command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """``ecsPropertiesOverride``: the option's override with the worker in its first container."""
    override = copy.deepcopy(options.ecs_properties_override or {})
    task = _first(override, "taskProperties")
    first = _first(task, "containers")
    name = base["ecsProperties"]["taskProperties"][0]["containers"][0].get("name")
    if name:
        first.setdefault("name", name)
    first["command"] = command
    first["environment"] = [*first.get("environment", []), *env_list(env)]
    if options.resource_requirements():
        first["resourceRequirements"] = options.resource_requirements()
    return override


def eks_override(options: AwsBatchOptions, base: dict[str, Any], command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """``eksPropertiesOverride``: the option's override with the worker in its first container."""
    override = copy.deepcopy(options.eks_properties_override or {})
    pod = override.setdefault("podProperties", {})
    first = _first(pod, "containers")
    name = base["eksProperties"]["podProperties"]["containers"][0].get("name")
    if name:
        first.setdefault("name", name)
    first["command"] = command[:1]
    first["args"] = command[1:]
    first["env"] = [*first.get("env", []), *env_list(env)]
    limits: dict[str, str] = {}
    if options.cpus is not None:
        limits["cpu"] = str(options.cpus)
    if options.memory is not None:
        limits["memory"] = f"{memory_mebibytes(options.memory)}Mi"
    if options.gpus is not None:
        limits["nvidia.com/gpu"] = str(options.gpus)
    if limits:
        first["resources"] = {"limits": limits, "requests": dict(limits)}
    return override
