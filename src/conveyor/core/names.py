"""The one rule for the names of projects, models, experiments, runs and run artifacts.

Every path that creates a named thing (the Python API, the CLI, the REST server and its HTTP
client, and the SQL stores underneath them all) calls these functions, so a name means the same
thing everywhere:

* A name is put in Unicode NFC, so the composed and decomposed forms of ``é`` are one name.
* It must not start or end with whitespace, must hold 1 to ``MAX_NAME_LENGTH`` characters, and
  only letters, digits and combining marks (any script), the space, and
  ``_ - . : @ + = ( ) [ ] , * ! ~ &``.
  No ``/``, ``\\``, ``%``, ``?``, ``#``, quotes or control characters, so a name is safe in a URL
  path and a file name.
* Names differing only in case are one name: :func:`name_key` (the case-folded form) is what
  stores keep unique, so ``Model`` cannot be created beside ``model`` (nor a project or an
  experiment of a project beside one spelled differently in case). Run names need not be
  unique: a run is known by its id.

Run artifact names are relative paths instead (:func:`check_artifact_name`): NFC, at most
``MAX_ARTIFACT_NAME_LENGTH`` characters, never leaving the folder they are placed in; case
matters there, as in file names.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from enum import StrEnum

from conveyor.core.errors import InvalidInputError

MAX_NAME_LENGTH = 200
MAX_ARTIFACT_NAME_LENGTH = 250
NAME_PUNCTUATION = frozenset(" _-.:@+=()[],*!~&")
_NAME_CATEGORIES = ("L", "M", "N")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_DECODE_ROUNDS = 4


class NameKind(StrEnum):
    """The kinds of names the rule covers; the kind is named in every refusal."""

    PROJECT = "project"
    MODEL = "model"
    EXPERIMENT = "experiment"
    RUN = "run"


def check_name(name: object, kind: NameKind | str) -> str:
    """Return ``name`` in its normal form (Unicode NFC), or refuse it.

    Parameters
    ----------
    name : object
        The name as given.
    kind : NameKind or str
        What the name names (``"model"``, ``"project"``, ...); used in the message.

    Returns
    -------
    str
        The NFC form of ``name``; store and compare this form.

    Raises
    ------
    InvalidInputError
        If ``name`` is not a string, is empty, longer than ``MAX_NAME_LENGTH`` characters,
        starts or ends with whitespace, or holds a character outside the allowed set.

    Examples
    --------
    >>> check_name("Cafe\u0301", "model") == "Caf\u00e9"
    True
    >>> check_name("churn ", "model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conveyor.core.errors.InvalidInputError: The model name 'churn ' must not start or end ...
    """
    what = f"The {kind} name"
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{what} must be a non-empty string. Got {name!r} instead.")
    if len(name) > MAX_NAME_LENGTH * 4:
        # Refused before normalising, so a huge name costs nothing.
        raise InvalidInputError(
            f"{what} must have at most {MAX_NAME_LENGTH} characters. Got {len(name)} instead."
        )
    form = unicodedata.normalize("NFC", name)
    if form != form.strip():
        raise InvalidInputError(
            f"{what} {name!r} must not start or end with whitespace. Got {name!r} instead; "
            f"use {form.strip()!r}."
        )
    if len(form) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} must have at most {MAX_NAME_LENGTH} characters. Got {len(form)} "
            f"({form[:40]!r}...) instead."
        )
    for char in form:
        if char not in NAME_PUNCTUATION and not unicodedata.category(char).startswith(
            _NAME_CATEGORIES
        ):
            raise InvalidInputError(
                f"{what} {name!r} has the character {char!r} "
                f"(U+{ord(char):04X}); allowed are letters, digits and marks of any script, "
                f"the space and {''.join(sorted(NAME_PUNCTUATION - {' '}))!r}."
            )
    return form


def name_key(name: str) -> str:
    """Return the key under which ``name`` is unique: its NFC form, case-folded.

    Examples
    --------
    >>> name_key("Model") == name_key("MODEL") == "model"
    True
    >>> name_key("Stra\u00dfe") == name_key("STRASSE")
    True
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def check_artifact_name(name: str) -> str:
    """Return ``name`` as a relative POSIX path that cannot leave the folder it is placed in.

    The name is put in Unicode NFC first, as the other names are. It is checked as given and
    in its percent-decoded forms (``%2e%2e%2f``, and again for double encoding
    ``%252e%252e%252f``), because some backends and URLs decode names.
    Empty and ``.`` segments are dropped; a trailing ``/`` (a directory) is removed.

    Raises
    ------
    InvalidInputError
        If ``name`` is empty, longer than ``MAX_ARTIFACT_NAME_LENGTH`` characters or, in any
        of its forms, absolute (``/``, ``~``), a URL or drive (``file:``, ``s3:``, ``C:``), has
        a ``..`` segment, a backslash or a control character.

    Examples
    --------
    >>> check_artifact_name("model/./weights.json")
    'model/weights.json'
    >>> check_artifact_name("%2e%2e%2fsecret")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conveyor.core.errors.InvalidInputError: ... it decodes to '../secret', which has a '..' segment.
    """
    if not isinstance(name, str) or not name.strip("/"):
        raise InvalidInputError(
            f"An artifact name must be a non-empty relative path. Got {name!r} instead."
        )
    if len(name) > MAX_ARTIFACT_NAME_LENGTH:
        raise InvalidInputError(
            f"An artifact name must have at most {MAX_ARTIFACT_NAME_LENGTH} characters. Got "
            f"{len(name)} characters ({name[:40]!r}...) instead."
        )
    name = unicodedata.normalize("NFC", name)
    form = name
    for _ in range(_DECODE_ROUNDS + 1):
        problem = _path_problem(form)
        if problem is not None:
            shown = "" if form == name else f"it decodes to {form!r}, which "
            raise InvalidInputError(
                f"The artifact name {name!r} must be a relative path inside its folder; "
                f"{shown or 'it '}{problem}."
            )
        decoded = urllib.parse.unquote(form)
        if decoded == form:
            break
        form = decoded
    else:
        raise InvalidInputError(
            f"The artifact name {name!r} must be a relative path inside its folder; it is "
            f"percent-encoded more than {_DECODE_ROUNDS} times."
        )
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def check_run_artifact_name(name: str) -> str:
    """Return ``name`` as a run records it: :func:`check_artifact_name`, keeping a trailing ``/``.

    A run names a directory artifact with a trailing ``/``; the check drops it, so it is put
    back.

    Raises
    ------
    InvalidInputError
        As :func:`check_artifact_name`.

    Examples
    --------
    >>> check_run_artifact_name("./plots//")
    'plots/'
    """
    checked = check_artifact_name(name)
    return f"{checked}/" if name.endswith("/") else checked


def _path_problem(form: str) -> str | None:
    if any(ord(ch) < 32 or ch == "\x7f" for ch in form):
        return "has a control character"
    if "\\" in form:
        return "has a backslash"
    if form.startswith(("/", "~")):
        return "is absolute"
    if _SCHEME.match(form):
        return "starts with a URL scheme or drive"
    if ".." in form.split("/"):
        return "has a '..' segment"
    return None
