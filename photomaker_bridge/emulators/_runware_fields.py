"""Reading one JSON object's parameters the way Runware checks them: the first broken rule raises its error.

Refusals follow Runware's ``invalid<Param>`` / ``missing<Param>`` naming with ``parameter`` set and, for range
checks, the CLI fixtures' ``min``/``max``/``multiplier``/``allowedValues`` (runware.md §2.3, §6). A JSON
``null`` reads as absent ("use the default", runware.md §5.2).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from ._runware_errors import TaskError, error_item

__all__ = ["Fields", "capitalised", "integral", "invalid_code"]


def capitalised(path: str) -> str:
    """``photoMaker.images`` → ``PhotoMakerImages``."""
    return "".join(part[:1].upper() + part[1:] for part in path.split("."))


def invalid_code(path: str) -> str:
    """Runware's ``invalid<Param>`` code for a parameter path: ``photoMaker.images`` → ``invalidPhotoMakerImages``."""
    return f"invalid{capitalised(path)}"


def integral(value: object) -> int | None:
    """``value`` as an integer when it is one (integral floats included), else ``None``."""
    # JSON has one number type and the legacy SDK types strength as float, so 15.0 arrives for 15
    # (runware.md §5.2). Integral floats are taken as integers; whether Runware accepts them is [UNVERIFIED].
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class Fields:
    """Reads one JSON object's parameters, raising Runware's error for the first broken rule."""

    def __init__(self, values: Mapping[str, Any], page: str, prefix: str = "") -> None:
        self.values = values
        self.page = page
        self.prefix = prefix

    def path(self, name: str) -> str:
        """The full parameter path of ``name`` (``photoMaker.images``)."""
        return f"{self.prefix}{name}"

    def error(self, code: str, message: str, name: str, value_type: str | None,
              **constraints: Any) -> TaskError:
        """A :class:`TaskError` with Runware's fields and a documentation link."""
        anchor = self.path(name).replace(".", "-").lower()
        return TaskError(error_item(code, message, parameter=self.path(name), value_type=value_type,
                                    documentation=f"{self.page}#request-{anchor}", **constraints))

    def invalid(self, name: str, message: str, value_type: str, code: str | None = None,
                **constraints: Any) -> TaskError:
        """The ``invalid<Param>`` error for ``name``."""
        return self.error(code or invalid_code(self.path(name)),
                          f"Invalid value for {self.path(name)} parameter. {message}", name, value_type,
                          **constraints)

    def missing(self, name: str, value_type: str) -> TaskError:
        """The ``missing<Param>`` error for ``name``."""
        return self.error(f"missing{capitalised(self.path(name))}",
                          f"Missing {self.path(name)} parameter. It is required.", name, value_type)

    def get(self, name: str) -> Any:
        """The value, with ``null`` read as absent."""
        return self.values.get(name)

    def reject_unknown(self, allowed: Collection[str]) -> None:
        """Raise ``unknownParameter`` for the first parameter not in ``allowed``."""
        for name in self.values:
            if name not in allowed:
                raise self.error("unknownParameter", f"Unknown parameter {self.path(name)}.", name, None)

    def integer(self, name: str, minimum: int, maximum: int | None, default: int | None, *,
                multiple_of: int | None = None, code: str | None = None, required: bool = False) -> int | None:
        """An integer in ``[minimum, maximum]`` (optionally a multiple), or ``default`` when absent."""
        value = self.get(name)
        if value is None:
            if required:
                raise self.missing(name, "integer")
            return default
        number = integral(value)
        in_range = number is not None and number >= minimum and (maximum is None or number <= maximum)
        if number is None or not in_range or (multiple_of is not None and number % multiple_of):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"of at least {minimum}"
            rule = f" and divisible by {multiple_of}" if multiple_of else ""
            raise self.invalid(name, f"It must be an integer {bounds}{rule}.", "integer", code,
                               min=minimum, max=maximum, multiplier=multiple_of)
        return number

    def number(self, name: str, minimum: float, maximum: float, default: float) -> float:
        """A number in ``[minimum, maximum]``, or ``default`` when absent."""
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= maximum:
            raise self.invalid(name, f"It must be a number between {minimum:g} and {maximum:g}.", "float",
                               min=minimum, max=maximum)
        return float(value)

    def text(self, name: str, *, required: bool = False, min_length: int | None = None,
             max_length: int | None = None, type_message: str | None = None) -> str | None:
        """A string within the length bounds, or ``None`` when absent."""
        value = self.get(name)
        if value is None:
            if required:
                raise self.missing(name, "string")
            return None
        label = self.path(name)
        if not isinstance(value, str):
            # The real capture in runware.md §2.3 (ISS #26): "Invalid value for positivePrompt parameter.
            # Positive prompt must be a string value."
            raise self.invalid(name, type_message or f"{label} must be a string value.", "string")
        too_short = min_length is not None and len(value) < min_length
        too_long = max_length is not None and len(value) > max_length
        if too_short or too_long:
            # Length has its own code: invalidPositivePromptLength (NEWTS errors.test, runware.md §6).
            raise self.invalid(name, f"The length must be between {min_length} and {max_length} characters.",
                               "string", f"{invalid_code(label)}Length", min=min_length, max=max_length)
        return value

    def choice(self, name: str, allowed: Collection[str], default: str,
               aliases: Mapping[str, str] | None = None) -> str:
        """One of ``allowed`` (or an alias of one), or ``default`` when absent."""
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, str) and aliases and value in aliases:
            return aliases[value]
        if not isinstance(value, str) or value not in allowed:
            listed = ", ".join(allowed)
            raise self.invalid(name, f"Supported values are: {listed}.", "string", allowedValues=list(allowed))
        return value

    def boolean(self, name: str, default: bool) -> bool:
        """A boolean, or ``default`` when absent."""
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.invalid(name, "It must be a boolean.", "boolean")
        return value

    def url(self, name: str) -> str | None:
        """An http(s) URL, or ``None`` when absent."""
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not re.match(r"^https?://[^/\s?#]+", value, re.IGNORECASE):
            raise self.invalid(name, "It must be an http or https URL.", "string")
        return value
