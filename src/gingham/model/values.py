"""Value types: CIDRs, addresses, ports, protocols, selectors, AS numbers, durations.

Each ``check_*`` function takes raw input and returns the normalised value or
raises ``ValueError`` with a message that names the bad value; the Annotated
types below attach them to pydantic fields. The helpers the rest of the project
uses (``ip_version_of``, ``port_range``, ``protocol_number``) live here too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, PlainValidator, StrictStr

from gingham.errors import SelectorError
from gingham.model.meta import dump_hint

# --- addresses ---


def ip_version_of(value: str) -> Literal[4, 6]:
    """4 or 6 for an address or CIDR (``"198.18.0.0/16"`` -> 4). ValueError if neither."""
    try:
        return 4 if ipaddress.ip_network(value, strict=False).version == 4 else 6
    except ValueError:
        raise ValueError(f"invalid IP address or CIDR {value!r}") from None


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} {dump_hint(value)}")
    return value


def check_cidr(value: Any) -> str:
    """A CIDR, normalised as Calico does: host bits cleared, a bare address becomes /32 or /128."""
    return _cidr(_require_str(value, "CIDR"))


# Validation runs for every resource the agent reads; the same texts come back again and again.
@lru_cache(maxsize=65536)
def _cidr(value: str) -> str:
    text = value.strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(f"invalid CIDR {value!r}") from None


def check_ip(value: Any) -> str:
    text = _require_str(value, "IP address").strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


def check_ip_interface(value: Any) -> str:
    """An address with its prefix length, host bits kept (Node ``bgp.ipv4Address``)."""
    text = _require_str(value, "address").strip()
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(f"invalid address/prefix {value!r}") from None
    return str(iface) if "/" in text else str(iface.ip)


def check_single_address_cidr(value: Any) -> str:
    cidr = check_cidr(value)
    net = ipaddress.ip_network(cidr)
    if net.num_addresses != 1:
        raise ValueError(f"{value!r} must be a single address (/32 or /128)")
    return cidr


_MAC_RE: Final = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")


def check_mac(value: Any) -> str:
    text = _require_str(value, "MAC address")
    if not _MAC_RE.match(text):
        raise ValueError(f"invalid MAC address {value!r}")
    return text.lower().replace("-", ":")


CIDR = Annotated[str, PlainValidator(check_cidr)]
IP = Annotated[str, PlainValidator(check_ip)]
IPInterface = Annotated[str, PlainValidator(check_ip_interface)]
SingleAddress = Annotated[str, PlainValidator(check_single_address_cidr)]
MAC = Annotated[str, PlainValidator(check_mac)]

# --- protocols ---

PROTOCOL_NUMBERS: Final[dict[str, int]] = {
    "TCP": 6,
    "UDP": 17,
    "ICMP": 1,
    "ICMPv6": 58,
    "SCTP": 132,
    "UDPLite": 136,
}
_PROTOCOL_BY_LOWER: Final = {name.lower(): name for name in PROTOCOL_NUMBERS}
PORT_PROTOCOLS: Final = frozenset({6, 17, 132})  # protocols that may carry ports in rules


@lru_cache(maxsize=1024, typed=True)
def _cached_protocol(value: int | str) -> int | str:
    return _check_protocol(value)


def check_protocol(value: Any) -> int | str:
    """A protocol name (any case; written back in Calico's spelling) or a number 1-255."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return _cached_protocol(value)
    return _check_protocol(value)


def _check_protocol(value: Any) -> int | str:
    """A protocol name (any case; written back in Calico's spelling) or a number 1-255."""
    if isinstance(value, bool):
        raise ValueError(f"invalid protocol {value!r}")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 1 <= value <= 255:
            raise ValueError(f"protocol number {value} out of range 1-255")
        return value
    if isinstance(value, str) and value.lower() in _PROTOCOL_BY_LOWER:
        return _PROTOCOL_BY_LOWER[value.lower()]
    raise ValueError(
        f"invalid protocol {dump_hint(value)}: one of {', '.join(PROTOCOL_NUMBERS)} or 1-255"
    )


def protocol_number(protocol: int | str) -> int:
    """``"TCP"`` -> 6, ``"icmpv6"`` -> 58, ``17`` -> 17."""
    checked = check_protocol(protocol)
    return checked if isinstance(checked, int) else PROTOCOL_NUMBERS[checked]


Protocol = Annotated[int | str, PlainValidator(check_protocol)]

# --- ports ---

_PORT_NAME_RE: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _port_number(text: str) -> int:
    number = int(text)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} out of range 0-65535")
    return number


def check_port(value: Any) -> int | str:
    """A rule port: see ``_check_port``; results cached by value and type."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return _cached_port(value)
    return _check_port(value)


@lru_cache(maxsize=65536, typed=True)
def _cached_port(value: int | str) -> int | str:
    return _check_port(value)


def _check_port(value: Any) -> int | str:
    """A rule port: ``80``, ``"80"`` (-> 80), ``"1000:2000"`` or a named port ``"http"``.

    A range whose ends are equal collapses to the number, as Calico writes it.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid port {value!r}")
    if isinstance(value, int):
        return _port_number(str(value))
    if not isinstance(value, str):
        raise ValueError(f"invalid port {dump_hint(value)}: a number, 'lo:hi' or a port name")
    text = value.strip()
    if text.isdigit():
        return _port_number(text)
    lo_text, sep, hi_text = text.partition(":")
    if sep:
        lo_text, hi_text = lo_text.strip(), hi_text.strip()
        if not (lo_text.isdigit() and hi_text.isdigit()):
            raise ValueError(f"invalid port range {value!r}: expected 'lo:hi' with numbers")
        lo, hi = _port_number(lo_text), _port_number(hi_text)
        if lo > hi:
            raise ValueError(f"invalid port range {value!r}: {lo} is above {hi}")
        return lo if lo == hi else f"{lo}:{hi}"
    if not _PORT_NAME_RE.match(text) or not any(c.isalpha() for c in text):
        raise ValueError(f"invalid port {value!r}: a number, 'lo:hi' or a port name")
    return text


def port_range(port: int | str) -> tuple[int, int] | str:
    """``80`` -> (80, 80); ``"1000:2000"`` -> (1000, 2000); a named port -> its name."""
    checked = check_port(port)
    if isinstance(checked, int):
        return (checked, checked)
    if ":" in checked:
        lo, hi = checked.split(":")
        return (int(lo), int(hi))
    return checked


Port = Annotated[int | str, PlainValidator(check_port)]


def check_port_number(value: Any) -> int:
    """An endpoint's own port: a number 1-65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"port must be a number, got {dump_hint(value)}")
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} out of range 1-65535")
    return value


PortNumber = Annotated[int, PlainValidator(check_port_number)]

# --- selectors ---

_parser: Callable[[str], object] | None = None
_parser_loaded = False


def _selector_parser() -> Callable[[str], object] | None:
    """``gingham.selector.parse`` if that package provides it (imported on first use)."""
    global _parser, _parser_loaded
    if not _parser_loaded:
        try:
            from gingham import selector as selector_module
        except ImportError:
            selector_module = None  # type: ignore[assignment]
        _parser = getattr(selector_module, "parse", None)
        _parser_loaded = True
    return _parser


def check_selector(value: str) -> str:
    """Syntax check with the selector package; the text is kept as written."""
    parse = _selector_parser()
    if parse is not None and value.strip():
        try:
            parse(value)
        except SelectorError as exc:
            shown = value if len(value) <= 120 else value[:100] + f"... ({len(value)} characters)"
            raise ValueError(f"invalid selector {shown!r}: {exc}") from None
    return value


Selector = Annotated[StrictStr, AfterValidator(check_selector)]

# --- numbers with a text form ---


def check_asn(value: Any) -> int:
    """A 4-byte AS number, also in the dotted form Calico accepts (``"1.10"`` -> 65546)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid AS number {value!r}")
    if isinstance(value, str):
        high, dot, low = value.partition(".")
        if dot and high.isdigit() and low.isdigit():
            if int(high) > 65535 or int(low) > 65535:
                raise ValueError(f"invalid AS number {value!r}: each part 0-65535")
            return int(high) * 65536 + int(low)
        if value.isdigit():
            value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"invalid AS number {dump_hint(value)}")
    if not 0 <= value <= 4294967295:
        raise ValueError(f"AS number {value} out of range 0-4294967295")
    return value


ASNumber = Annotated[int, PlainValidator(check_asn)]

_DURATION_RE: Final = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def check_duration(value: Any) -> str:
    """A Go duration as Calico writes them: ``90s``, ``1m30s``, ``500ms``."""
    text = _require_str(value, "duration")
    if text != "0" and not _DURATION_RE.match(text):
        raise ValueError(f"invalid duration {value!r}: e.g. '90s', '1m30s', '500ms'")
    return text


Duration = Annotated[str, PlainValidator(check_duration)]

_IFACE_RE: Final = re.compile(r"^[A-Za-z0-9_.@:-]{1,15}$")


def check_interface_name(value: Any) -> str:
    text = _require_str(value, "interface name")
    if not _IFACE_RE.match(text):
        raise ValueError(f"invalid interface name {value!r}: 1-15 characters, no '/' or spaces")
    return text


InterfaceName = Annotated[str, PlainValidator(check_interface_name)]

__all__ = [
    "CIDR",
    "IP",
    "MAC",
    "PORT_PROTOCOLS",
    "PROTOCOL_NUMBERS",
    "ASNumber",
    "Duration",
    "IPInterface",
    "InterfaceName",
    "Port",
    "PortNumber",
    "Protocol",
    "Selector",
    "SingleAddress",
    "check_cidr",
    "check_port",
    "check_protocol",
    "check_selector",
    "ip_version_of",
    "port_range",
    "protocol_number",
]
