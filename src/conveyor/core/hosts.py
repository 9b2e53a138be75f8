"""Who may reach a Conveyor server: the bind-address rule and the trusted ``Host`` names.

Both HTTP servers (``conveyor server``, the tracking and registry API, and ``conveyor serve``,
the prediction server) apply the same two rules:

- A server bound to an address other machines can reach needs a token, so that writes need
  ``Authorization: Bearer <token>``; :func:`check_bind` refuses to start otherwise, unless the
  operator says ``insecure`` explicitly.
- A request is answered only when its ``Host`` header is one of :func:`trusted_hosts` (the
  loopback names, the bind address and the names the operator adds), which stops a
  DNS-rebinding page in a browser from talking to a server on the user's machine.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from conveyor.core.errors import ConfigError

LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
"""``Host`` names every server trusts: the loopback addresses."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    Examples
    --------
    >>> is_loopback("127.0.0.2"), is_loopback("[::1]"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_hosts(host: str, allowed_hosts: Sequence[str] = ()) -> list[str]:
    """The ``Host`` header names a server bound to ``host`` answers, without duplicates.

    Examples
    --------
    >>> trusted_hosts("10.0.0.5", ["ml.example.com"])
    ['localhost', '127.0.0.1', '[::1]', '10.0.0.5', 'ml.example.com']
    """
    return list(dict.fromkeys([*LOOPBACK_HOSTS, host, *allowed_hosts]))


def check_bind(
    host: str, *, has_token: bool, insecure: bool = False, server: str = "The server"
) -> bool:
    """Refuse to listen on a non-loopback ``host`` without a token, unless ``insecure``.

    Parameters
    ----------
    host : str
        The address the server will bind.
    has_token : bool
        Whether a token (``CONVEYOR_TOKEN``) protects the writes.
    insecure : bool
        The operator accepts an open server on a reachable address.
    server : str
        How the message names the server.

    Returns
    -------
    bool
        True when the server is reachable by other machines and open to anyone (``insecure``
        was needed): the caller warns.

    Raises
    ------
    ConfigError
        If ``host`` is not a loopback address, no token is set and ``insecure`` is false.
    """
    if is_loopback(host) or has_token:
        return False
    if insecure:
        return True
    raise ConfigError(
        f"{server} would listen on '{host}', which other machines can reach, without a "
        f"token. Set CONVEYOR_TOKEN so that writes need 'Authorization: Bearer <token>', "
        f"or bind a loopback address such as {LOOPBACK_HOSTS[1]}."
    )


def check_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """Validate browser origins allowed by CORS: each ``http(s)://host[:port]``, never ``*``.

    Raises
    ------
    ConfigError
        If an origin is ``*`` (any page could then call the server and read its answers) or
        not of the form ``http(s)://host[:port]``.

    Examples
    --------
    >>> check_origins(["https://app.example.com"])
    ('https://app.example.com',)
    """
    for origin in origins:
        if origin == "*" or not re.fullmatch(r"https?://[^/\s*]+", origin):
            raise ConfigError(
                "CORS origins must be such as 'https://app.example.com' (scheme, host and "
                f"port; no '*'). Got {origin!r} instead."
            )
    return tuple(origins)
