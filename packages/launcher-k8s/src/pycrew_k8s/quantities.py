"""Kubernetes resource quantities (``500m``, ``4Gi``, ``1e3``): their form, their manifest string, their amount.

The resource options of :class:`~pycrew_k8s.options.K8sOptions` are checked against the
form, written into the manifest as quantity strings, and compared (a request above its
limit) by their amounts.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal

#: Resource quantities: ``500m``, ``2``, ``1.5``, ``4Gi``, ``512Mi``, ``1e3``.
_QUANTITY = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _quantity(value: str | float) -> str:
    """A resource option as a quantity string (``0.5`` -> ``"500m"``, ``2`` -> ``"2"``)."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{math.ceil(value * 1000)}m"


_SUFFIXES: dict[str, Decimal] = {
    suffix: Decimal(factor) for suffix, factor in {
        "": "1", "m": "0.001", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12", "P": "1e15", "E": "1e18",
        "Ki": str(2**10), "Mi": str(2**20), "Gi": str(2**30), "Ti": str(2**40), "Pi": str(2**50), "Ei": str(2**60),
    }.items()
}


#: The arithmetic's own context: not the calling thread's, which a program may have set to trap
#: inexact results or to a few digits (a test's did: decimal.Inexact in the options check).
_CONTEXT = Context(prec=60)


def _amount(value: str | float) -> Decimal:
    """The amount of a validated quantity (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824, ``1e3`` -> 1000)."""
    if not isinstance(value, str):
        return Decimal(str(value))
    number = value.rstrip("mkMGTPEi")
    suffix = value[len(number):]
    return _CONTEXT.multiply(Decimal(number), _SUFFIXES[suffix])  # "1e3" has no suffix: Decimal reads the exponent
