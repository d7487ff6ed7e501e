"""What :meth:`K8sOptions.validate <pycrew_k8s.options.K8sOptions.validate>` checks values against.

Kubernetes' rules for names (DNS labels and subdomains, label keys and values, environment
variable and resource names), and, for the structured options in manifest form, the
``kubernetes`` client's pydantic models when it ships them.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from pycrew import OptionsError

#: Label values: at most 63 characters, alphanumeric at both ends, ``-_.`` inside.
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
#: Label and annotation keys: an optional DNS-subdomain prefix and ``/``, then a name.
_KEY_NAME = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
#: Environment variable names the API server accepts (no ``=``; pycrew asks for identifiers).
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _model_check(owner: str, name: str, value: Any, model: str) -> None:
    """Check ``value`` against the client's pydantic model ``model`` (if the client has one).

    Raises:
        OptionsError: naming the option, the first problem's location and message.
    """
    try:
        models = importlib.import_module("kubernetes.client.models")
    except ImportError:  # the launcher needs kubernetes anyway; the API server will check
        return
    validate = getattr(getattr(models, model, None), "model_validate", None)
    if validate is None:  # a client without pydantic models (< 37): the API server checks
        return
    try:
        validate(value)
    except ValueError as exc:  # pydantic.ValidationError derives from ValueError
        errors = getattr(exc, "errors", None)
        detail = str(exc).splitlines()[0]
        if callable(errors):
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "<top>"
            detail = f"at {where}: {first.get('msg', '')}"
        raise OptionsError(
            f"{owner} option {name!r} is not a valid Kubernetes {model[2:]} ({detail}); "
            f"write it in manifest form with camelCase keys, got {value!r}"
        ) from None


def _is_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))


def _is_label_key(key: str) -> bool:
    prefix, sep, name = key.rpartition("/")
    if sep and not _is_subdomain(prefix):
        return False
    return bool(_KEY_NAME.fullmatch(name))


def _is_resource_name(name: str) -> bool:
    return _is_label_key(name)
