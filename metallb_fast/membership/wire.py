"""Sans-IO codec for hashicorp/memberlist's wire protocol (what MetalLB's speakers speak on port 7946).

Bytes in, values out, and back; no sockets, no clock. Facts: hashicorp/memberlist's net.go, security.go, util.go
and label.go, checked against memberlist 0.2.2 / go-msgpack 0.5.5 (Debian) and v0.5.1 / go-msgpack v2.1.1 (what
MetalLB links).

- A message is one type byte + a msgpack map keyed by the Go field names (`encode_message`, `decode_message`).
- Packets (UDP) wrap messages: compound -> CRC -> AES-GCM -> label on send; receive unwraps in reverse and also
  accepts LZW compression, which Go uses whenever it makes a packet smaller (`encode_packet`, `decode_packet`).
- Streams (TCP) carry one message per direction, always LZW-compressed by Go, encrypted in a length-prefixed frame
  (`encode_stream`, `decode_stream`; the latter is called on a growing buffer until it stops asking for more).

Decoding never raises: whatever cannot be understood comes back as a `Problem` with a stable reason code.
We never compress on send: every memberlist receiver accepts uncompressed data, and it keeps our sends cheap.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from metallb_fast.membership.messages import (
    Ack,
    Alive,
    Dead,
    ErrorResponse,
    IndirectPing,
    Message,
    MessageType,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
)

# ---- reason codes (stable: logs, metrics and tests key on them) ----
TRUNCATED = "truncated"
UNKNOWN_TYPE = "unknown-type"
BAD_BODY = "bad-body"
BAD_CRC = "bad-crc"
BAD_COMPRESS = "bad-compress"
BAD_LABEL = "bad-label"
DECRYPT_FAILED = "decrypt-failed"
LABEL_MISMATCH = "label-mismatch"
NOT_ENCRYPTED = "not-encrypted"
UNEXPECTED_ENCRYPTION = "unexpected-encryption"
TOO_MANY_PARTS = "too-many-parts"
TOO_LARGE = "too-large"
TOO_DEEP = "too-deep"

# ---- limits that keep junk harmless ----
MAX_DECOMPRESSED = 10 * 1024 * 1024  # total LZW output per packet or stream
MAX_STREAM_BYTES = 20 * 1024 * 1024  # memberlist's maxPushStateBytes: the largest stream we wait for
MAX_PUSH_NODES = 65536
MAX_USER_STATE = 10 * 1024 * 1024
MAX_NESTING = 4  # compound/compress/CRC wrappers inside each other (Go itself nests at most compress(compound))
MAX_LABEL = 255

ENCRYPTION_VERSION = 1  # AES-GCM without padding; 0 (PKCS7-padded) is only spoken at protocol version 1
NONCE_SIZE = 12
TAG_SIZE = 16
_LZW_ALGO = 0


@dataclass(frozen=True)
class Problem:
    """Why (part of) a packet or stream was not understood; `reason` is one of the constants above."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Decoded:
    """What one UDP packet held: the messages understood, the parts that were not, and whether it was trusted."""

    messages: tuple[Message, ...]
    problems: tuple[Problem, ...]
    authenticated: bool


@dataclass(frozen=True)
class StreamResult:
    """One step of reading a stream: a message, a problem (close the connection), or a request for more bytes.

    `consumed` counts the bytes of the buffer the message used (label and encryption frame included); it is 0 while
    `need_more`, and the whole buffer after a problem.
    """

    message: Message | None
    problem: Problem | None
    need_more: bool
    consumed: int


class KeyFileError(ValueError):
    """The memberlist secret key file is missing, unreadable or empty."""


class LzwError(ValueError):
    def __init__(self, message: str, reason: str = BAD_COMPRESS) -> None:
        super().__init__(message)
        self.reason = reason


# ---- keys ----


def metallb_key(secret: bytes) -> bytes:
    """The AES key MetalLB derives from its Secret: `sha256.New().Sum(secret)[:32]`.

    Go's `Sum(b)` appends the digest of the *empty* input to b, so this is the first 32 bytes of
    `secret + sha256(b"")`, not sha256(secret): a 22-char controller-made secret gives those 22 bytes + 10.
    """
    return (secret + hashlib.sha256(b"").digest())[:32]


def read_secret_key(path: str) -> bytes:
    """The key from MetalLB's `--ml-secret-key-path`: `<path>/secretkey` (or `path` itself if it is a file).

    The content is used unmodified (MetalLB does not trim a trailing newline either).
    """
    file = os.path.join(path, "secretkey") if os.path.isdir(path) else path
    try:
        with open(file, "rb") as handle:
            secret = handle.read()
    except OSError as error:
        raise KeyFileError(f"cannot read the memberlist secret key {file}: {error.strerror or error}") from error
    if not secret:
        raise KeyFileError(f"the memberlist secret key file {file} is empty; it must hold the Secret's secretkey")
    return metallb_key(secret)


@dataclass(frozen=True)
class Keyring:
    """AES-GCM keys, primary (used to encrypt) first; all are tried on receive. No keys: no encryption."""

    keys: tuple[bytes, ...] = ()
    _ciphers: tuple[AESGCM, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(bytes(key) for key in self.keys)
        for key in keys:
            if len(key) not in (16, 24, 32):
                raise ValueError(f"a memberlist key must be 16, 24 or 32 bytes (AES-128/192/256), got {len(key)} bytes")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "_ciphers", tuple(AESGCM(key) for key in keys))

    @classmethod
    def none(cls) -> Keyring:
        return cls(())

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def seal(self, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
        """`[version 1][nonce][ciphertext + tag]` with the primary key."""
        if not self.enabled:
            raise ValueError("cannot encrypt: the keyring has no key")
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"an AES-GCM nonce is {NONCE_SIZE} bytes, got {len(nonce)}")
        return bytes([ENCRYPTION_VERSION]) + nonce + self._ciphers[0].encrypt(nonce, plaintext, aad)

    def open(self, payload: bytes, aad: bytes) -> bytes | None:
        """The plaintext, trying every key; None when no key authenticates the payload."""
        if len(payload) < 1 + NONCE_SIZE + TAG_SIZE or payload[0] > ENCRYPTION_VERSION:
            return None
        nonce, ciphertext = payload[1 : 1 + NONCE_SIZE], payload[1 + NONCE_SIZE :]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, ciphertext, aad)
            except InvalidTag:
                continue
            return plain if payload[0] == ENCRYPTION_VERSION else _strip_pkcs7(plain)
        return None


def _strip_pkcs7(plain: bytes) -> bytes | None:
    # encryption version 0 (peers at protocol version 1 only) padded the plaintext to the AES block size
    pad = plain[-1] if plain else 0
    return plain[:-pad] if 1 <= pad <= 16 and pad <= len(plain) else None


# ---- msgpack fields, as go-msgpack writes and reads them ----
# go-msgpack (MsgpackHandle{}) writes strings and []byte alike as old-spec raw (a0-bf, da, db), nil slices as c0,
# struct fields as a map sorted by name. So the codec must know, per field, whether the raw is a name (str) or
# bytes; a nil decodes to the zero value, as in Go.


class _Malformed(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.problem = Problem(reason, detail)


class _NeedMore(Exception):
    """A stream buffer ends inside a message: wait for more bytes."""


def _fail(reason: str, detail: str = "") -> NoReturn:
    raise _Malformed(reason, detail)


def _raw(data: bytes) -> bytes:
    return msgpack.packb(data, use_bin_type=False)


class _Kind:
    zero: Any = None

    def pack(self, value: Any) -> bytes:
        raise NotImplementedError

    def unpack(self, raw: object) -> Any:
        raise NotImplementedError


class _Unsigned(_Kind):
    zero = 0

    def __init__(self, bits: int) -> None:
        self.limit = 1 << bits

    def pack(self, value: int) -> bytes:
        if not 0 <= value < self.limit:
            raise ValueError(f"{value} does not fit an unsigned field below {self.limit}")
        return msgpack.packb(value)  # positive fixint / cc / cd / ce, as Go's encodeUint

    def unpack(self, raw: object) -> int:
        if type(raw) is not int or not 0 <= raw < self.limit:
            _fail(BAD_BODY, f"expected an unsigned integer below {self.limit}, got {raw!r:.40}")
        return raw


class _GoInt(_Kind):
    """A Go `int` (lengths, counts, NodeStateType): never negative in memberlist, and Go panics on a negative count."""

    zero = 0

    def pack(self, value: int) -> bytes:
        if value < 0 or value >= 1 << 63:
            raise ValueError(f"{value} is not a non-negative Go int")
        # go-msgpack v2 (MetalLB's) writes a signed int above 127 as int16/32/64; 0.5.5 wrote uint. Both decode both.
        if value <= 0x7F:
            return bytes([value])
        if value <= 0x7FFF:
            return b"\xd1" + value.to_bytes(2, "big")
        if value <= 0x7FFFFFFF:
            return b"\xd2" + value.to_bytes(4, "big")
        return b"\xd3" + value.to_bytes(8, "big")

    def unpack(self, raw: object) -> int:
        if type(raw) is not int or not 0 <= raw < 1 << 63:
            _fail(BAD_BODY, f"expected a non-negative integer, got {raw!r:.40}")
        return raw


class _State(_GoInt):
    zero = NodeState.ALIVE

    def unpack(self, raw: object) -> NodeState:
        value = super().unpack(raw)
        if value > max(NodeState):
            _fail(BAD_BODY, f"unknown node state {value}")
        return NodeState(value)


class _Str(_Kind):
    zero = ""

    def pack(self, value: str) -> bytes:
        return _raw(value.encode())

    def unpack(self, raw: object) -> str:
        if not isinstance(raw, bytes):
            _fail(BAD_BODY, f"expected a string, got {type(raw).__name__}")
        try:
            return raw.decode()
        except UnicodeDecodeError:
            _fail(BAD_BODY, f"a name is not UTF-8: {raw!r:.40}")


class _Bytes(_Kind):
    zero = b""

    def pack(self, value: bytes) -> bytes:
        return _raw(value) if value else b"\xc0"  # Go's nil slice (an empty Meta or Payload) is nil

    def unpack(self, raw: object) -> bytes:
        if isinstance(raw, bytes):
            return raw
        # go-msgpack also fills a []byte from an array of small ints; accept it like Go does
        if isinstance(raw, list) and all(type(item) is int and 0 <= item <= 0xFF for item in raw):
            return bytes(raw)
        _fail(BAD_BODY, f"expected bytes, got {type(raw).__name__}")


class _Bool(_Kind):
    zero = False

    def pack(self, value: bool) -> bytes:
        return b"\xc3" if value else b"\xc2"

    def unpack(self, raw: object) -> bool:
        if not isinstance(raw, bool):
            _fail(BAD_BODY, f"expected a bool, got {type(raw).__name__}")
        return raw


U8, U16, U32 = _Unsigned(8), _Unsigned(16), _Unsigned(32)
INT, STATE, STR, BYTES, BOOL = _GoInt(), _State(), _Str(), _Bytes(), _Bool()


@dataclass(frozen=True)
class _Field:
    key: str  # the Go field name = the msgpack map key
    attr: str  # the Python attribute
    kind: _Kind
    omitempty: bool = False  # `codec:",omitempty"`: absent when zero


class _Schema:
    """One Go struct: how to write it as go-msgpack does (sorted keys) and read it back leniently."""

    def __init__(self, *fields: _Field) -> None:
        self.fields = tuple(sorted(fields, key=lambda f: f.key))
        self.by_key = {f.key.encode(): f for f in self.fields}
        self.packed_keys = {f.key: _raw(f.key.encode()) for f in self.fields}

    def pack(self, get: Callable[[str], Any]) -> bytes:
        present = [(f, get(f.attr)) for f in self.fields]
        present = [(f, value) for f, value in present if not (f.omitempty and value == f.kind.zero)]
        out = [bytes([0x80 | len(present)])]  # fixmap: no memberlist struct has more than 15 fields
        for f, value in present:
            out += (self.packed_keys[f.key], f.kind.pack(value))
        return b"".join(out)

    def unpack(self, obj: object) -> dict[str, Any]:
        """Attribute values from a decoded map; missing fields are Go's zero values, unknown fields are ignored."""
        if not isinstance(obj, dict):
            _fail(BAD_BODY, f"expected a map, got {type(obj).__name__}")
        values = {f.attr: f.kind.zero for f in self.fields}
        for key, raw in obj.items():
            f = self.by_key.get(key) if isinstance(key, bytes) else None
            if f is not None and raw is not None:  # nil decodes to the zero value
                values[f.attr] = f.kind.unpack(raw)
        return values


_SEQ = _Field("SeqNo", "seq_no", U32)
_SOURCE = (
    _Field("SourceAddr", "source_addr", BYTES, omitempty=True),
    _Field("SourcePort", "source_port", U16, omitempty=True),
    _Field("SourceNode", "source_node", STR, omitempty=True),
)
_INCARNATION = _Field("Incarnation", "incarnation", U32)
_NODE = _Field("Node", "node", STR)
_FROM = _Field("From", "from_", STR)
_ADDR, _PORT = _Field("Addr", "addr", BYTES), _Field("Port", "port", U16)
_META, _VSN = _Field("Meta", "meta", BYTES), _Field("Vsn", "vsn", BYTES)

# Messages that are exactly one map, by type byte.
_MAP_MESSAGES: dict[int, tuple[type, _Schema]] = {
    MessageType.PING: (Ping, _Schema(_SEQ, _NODE, *_SOURCE)),
    MessageType.INDIRECT_PING: (
        IndirectPing,
        _Schema(_SEQ, _Field("Target", "target", BYTES), _PORT, _NODE, _Field("Nack", "nack", BOOL), *_SOURCE),
    ),
    MessageType.ACK: (Ack, _Schema(_SEQ, _Field("Payload", "payload", BYTES))),
    MessageType.NACK: (Nack, _Schema(_SEQ)),
    MessageType.SUSPECT: (Suspect, _Schema(_INCARNATION, _NODE, _FROM)),
    MessageType.ALIVE: (Alive, _Schema(_INCARNATION, _NODE, _ADDR, _PORT, _META, _VSN)),
    MessageType.DEAD: (Dead, _Schema(_INCARNATION, _NODE, _FROM)),
    MessageType.ERR: (ErrorResponse, _Schema(_Field("Error", "error", STR))),
}
_TYPE_OF: dict[type, int] = {cls: type_byte for type_byte, (cls, _) in _MAP_MESSAGES.items()}

_PUSH_PULL_HEADER = _Schema(
    _Field("Nodes", "nodes", INT), _Field("UserStateLen", "user_state_len", INT), _Field("Join", "join", BOOL)
)
_PUSH_NODE_STATE = _Schema(
    _Field("Name", "name", STR), _ADDR, _PORT, _META, _INCARNATION, _Field("State", "state", STATE), _VSN
)
_USER_HEADER = _Schema(_Field("UserMsgLen", "length", INT))
_COMPRESS = _Schema(_Field("Algo", "algo", U8), _Field("Buf", "buf", BYTES))


# ---- encoding ----


def encode_message(message: Message) -> bytes:
    """One type byte + the go-msgpack body (push-pull and user: the stream form, header + data)."""
    if isinstance(message, PushPull):
        return _encode_push_pull(message)
    if isinstance(message, User):
        header = _USER_HEADER.pack({"length": len(message.payload)}.__getitem__)
        return bytes([MessageType.USER]) + header + message.payload
    type_byte = _TYPE_OF.get(type(message))
    if type_byte is None:
        raise TypeError(f"not a memberlist message: {type(message).__name__}")
    _, schema = _MAP_MESSAGES[type_byte]
    return bytes([type_byte]) + schema.pack(lambda attr: getattr(message, attr))


def _encode_push_pull(message: PushPull) -> bytes:
    header = {"nodes": len(message.nodes), "user_state_len": len(message.user_state), "join": message.join}
    parts = [bytes([MessageType.PUSH_PULL]), _PUSH_PULL_HEADER.pack(header.__getitem__)]
    parts += (_PUSH_NODE_STATE.pack(functools.partial(getattr, node)) for node in message.nodes)
    parts.append(message.user_state)
    return b"".join(parts)


def _packet_form(message: Message) -> bytes:
    # In a packet a user message is its payload right after the type byte (Go's handleUser gets buf[1:]).
    if isinstance(message, User):
        return bytes([MessageType.USER]) + message.payload
    return encode_message(message)


def _label_header(label: bytes) -> bytes:
    if len(label) > MAX_LABEL:
        raise ValueError(f"a memberlist label is at most {MAX_LABEL} bytes, got {len(label)}")
    return bytes([MessageType.HAS_LABEL, len(label)]) + label if label else b""


def _compound(parts: Sequence[bytes]) -> bytes:
    if len(parts) > 255:
        raise ValueError(f"a compound message holds at most 255 messages, got {len(parts)}")
    too_long = [len(part) for part in parts if len(part) > 0xFFFF]
    if too_long:
        raise ValueError(f"a compound part is at most 65535 bytes, got {too_long[0]}")
    lengths = b"".join(struct.pack(">H", len(part)) for part in parts)
    return bytes([MessageType.COMPOUND, len(parts)]) + lengths + b"".join(parts)


def encode_packet(
    messages: Sequence[Message],
    *,
    keyring: Keyring,
    label: bytes = b"",
    crc: bool = False,
    nonce: bytes | None = None,
) -> bytes:
    """A UDP payload: the message (several: a compound), then CRC, encryption (AAD = label), label header.

    Send CRC only to peers known to speak protocol version 5 or more (what memberlist does); older ones drop it.
    """
    if not messages:
        raise ValueError("a packet needs at least one message")
    parts = [_packet_form(message) for message in messages]
    payload = parts[0] if len(parts) == 1 else _compound(parts)
    if crc:
        payload = bytes([MessageType.HAS_CRC]) + struct.pack(">I", zlib.crc32(payload)) + payload
    if keyring.enabled:
        payload = keyring.seal(payload, aad=label, nonce=nonce)
    return _label_header(label) + payload


def encode_stream(message: Message, *, keyring: Keyring, label: bytes = b"", nonce: bytes | None = None) -> bytes:
    """One TCP stream message; encrypted: `[10][u32 length][1][nonce][ct + tag]`, AAD = those 5 bytes + label."""
    payload = encode_message(message)
    if keyring.enabled:
        length = 1 + NONCE_SIZE + len(payload) + TAG_SIZE
        header = bytes([MessageType.ENCRYPT]) + struct.pack(">I", length)
        payload = header + keyring.seal(payload, aad=header + label, nonce=nonce)
    return _label_header(label) + payload


# ---- LZW (Go's compress/lzw, LSB order, 8-bit literals) ----

_LZW_CLEAR, _LZW_EOF = 256, 257
_LZW_MAX_WIDTH = 12
_LZW_TABLE = [bytes([i]) for i in range(256)] + [b"", b""]  # codes 256/257 are control codes


def lzw_decompress(data: bytes, *, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decode what Go's `lzw.NewWriter(w, lzw.LSB, 8)` wrote; mirrors Go's reader, code for code.

    Codes are 9 bits after a clear, widening to 12; the first free code is 258. When the table is full the reader
    keeps decoding without adding codes until the writer sends a clear (Go's writer clears at 4095 itself).
    Raises LzwError on invalid codes, data ending before the eof code, or output above `limit`.
    """
    table = list(_LZW_TABLE)
    width, hi, last = 9, _LZW_EOF, -1  # hi: the code the next entry gets; last: previous code (-1: none)
    bits = nbits = pos = 0
    out = bytearray()
    while True:
        while nbits < width:
            if pos == len(data):
                raise LzwError("LZW data ends before its eof code")
            bits |= data[pos] << nbits
            pos, nbits = pos + 1, nbits + 8
        code = bits & ((1 << width) - 1)
        bits, nbits = bits >> width, nbits - width
        if code == _LZW_CLEAR:
            del table[len(_LZW_TABLE) :]
            width, hi, last = 9, _LZW_EOF, -1
            continue
        if code == _LZW_EOF:
            return bytes(out)
        entry = _lzw_expand(table, code, hi, last)
        out += entry
        if len(out) > limit:
            raise LzwError(f"LZW output exceeds {limit} bytes", TOO_LARGE)
        if last >= 0:
            table.append(table[last] + entry[:1])
        last, hi = code, hi + 1
        if hi >= 1 << width:
            if width == _LZW_MAX_WIDTH:
                last, hi = -1, hi - 1  # table full: stop adding codes (Go keeps hi below 4096)
            else:
                width += 1


def _lzw_expand(table: list[bytes], code: int, hi: int, last: int) -> bytes:
    if code == hi and last >= 0:
        previous = table[last]  # the code being defined right now: previous string + its own first byte
        return previous + previous[:1]
    if (code < _LZW_CLEAR or code <= hi) and code < len(table):
        return table[code]
    raise LzwError(f"invalid LZW code {code}")


class _Budget:
    """Decompressed bytes still allowed for one packet or stream (compound parts share it: no bomb fan-out)."""

    def __init__(self, total: int = MAX_DECOMPRESSED) -> None:
        self.left = total

    def decompress(self, body: bytes) -> bytes:
        """The inner message of a compress wrapper body (the msgpack {Algo, Buf} after the type byte)."""
        wrapper = _COMPRESS.unpack(_Reader(body, final=True).next_object())
        if wrapper["algo"] != _LZW_ALGO:
            _fail(BAD_COMPRESS, f"unknown compression algorithm {wrapper['algo']}")
        try:
            inner = lzw_decompress(wrapper["buf"], limit=self.left)
        except LzwError as error:
            _fail(error.reason, str(error))
        self.left -= len(inner)
        return inner


# ---- decoding messages ----


def _truncated_or_more(final: bool, what: str) -> NoReturn:
    if final:
        _fail(TRUNCATED, what)
    raise _NeedMore


class _Reader:
    """msgpack objects one after another from `data`, then raw bytes; knows how far it got."""

    def __init__(self, data: bytes, *, final: bool) -> None:
        self.data, self.final = data, final
        self.unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            max_buffer_size=max(len(data), 1),
            max_str_len=MAX_STREAM_BYTES,
            max_bin_len=MAX_STREAM_BYTES,
            max_array_len=4096,
            max_map_len=4096,
            max_ext_len=4096,
        )
        self.unpacker.feed(data)
        self.tail = 0  # raw bytes taken after the last object

    @property
    def offset(self) -> int:
        return self.unpacker.tell() + self.tail

    def next_object(self) -> object:
        try:
            return self.unpacker.unpack()
        except msgpack.OutOfData:
            _truncated_or_more(self.final, "message body ends early")
        except Exception as error:  # msgpack raises many kinds (FormatError, StackError, ValueError, TypeError)
            _fail(BAD_BODY, f"invalid msgpack: {error}")

    def take(self, count: int) -> bytes:
        start = self.offset
        if len(self.data) - start < count:
            _truncated_or_more(self.final, f"{count} bytes of data announced, {len(self.data) - start} present")
        self.tail += count
        return self.data[start : start + count]


def _parse_message(data: bytes, *, final: bool, packet: bool) -> tuple[Message, int]:
    """One message from the start of `data` and its length; with final=False, _NeedMore when it is incomplete."""
    if not data:
        _truncated_or_more(final, "empty message")
    type_byte, reader = data[0], _Reader(data[1:], final=final)
    if type_byte in _MAP_MESSAGES:
        cls, schema = _MAP_MESSAGES[type_byte]
        message = cls(**schema.unpack(reader.next_object()))
    elif type_byte == MessageType.PUSH_PULL:
        message = _parse_push_pull(reader)
    elif type_byte == MessageType.USER and packet:
        return User(data[1:]), len(data)
    elif type_byte == MessageType.USER:
        header = _USER_HEADER.unpack(reader.next_object())
        message = User(reader.take(_capped(header["length"], MAX_USER_STATE, "user message")))
    else:
        _fail(UNKNOWN_TYPE, f"message type {type_byte}")
    return message, 1 + reader.offset


def _capped(value: int, cap: int, what: str) -> int:
    if value > cap:
        _fail(TOO_LARGE, f"{what} of {value} bytes exceeds {cap}")
    return value


def _parse_push_pull(reader: _Reader) -> PushPull:
    header = _PUSH_PULL_HEADER.unpack(reader.next_object())
    if header["nodes"] > MAX_PUSH_NODES:
        _fail(TOO_MANY_PARTS, f"push-pull announces {header['nodes']} nodes, at most {MAX_PUSH_NODES} accepted")
    user_state_len = _capped(header["user_state_len"], MAX_USER_STATE, "push-pull user state")
    nodes = tuple(PushNodeState(**_PUSH_NODE_STATE.unpack(reader.next_object())) for _ in range(header["nodes"]))
    return PushPull(join=header["join"], nodes=nodes, user_state=reader.take(user_state_len))


def decode_message(data: bytes) -> Message | Problem:
    """One whole message (type byte + body; push-pull and user in their stream form). Never raises."""
    try:
        message, _ = _parse_message(bytes(data), final=True, packet=False)
    except _Malformed as error:
        return error.problem
    return message


# ---- decoding packets ----


def _split_label(data: bytes, *, final: bool) -> tuple[bytes, int]:
    """(label, header length); a packet or stream without a label header has label b""."""
    if not data or data[0] != MessageType.HAS_LABEL:
        if not data and not final:
            raise _NeedMore
        return b"", 0
    if len(data) < 2:
        _truncated_or_more(final, "label header")
    size = data[1]
    if size == 0:
        _fail(BAD_LABEL, "a label header must not be empty")
    if len(data) < 2 + size:
        _truncated_or_more(final, "label header")
    return data[2 : 2 + size], 2 + size


def _check_label(got: bytes, want: bytes) -> None:
    # memberlist's rule: the label must equal ours exactly; no label is a label too ("")
    if got != want:
        _fail(LABEL_MISMATCH, f"label {got!r} where {want!r} is expected")


def decode_packet(data: bytes, *, keyring: Keyring, label: bytes = b"") -> Decoded:
    """Everything one UDP packet holds. Never raises: what is not understood becomes a Problem."""
    data = bytes(data)
    try:
        got, offset = _split_label(data, final=True)
        _check_label(got, label)
    except _Malformed as error:
        return Decoded((), (error.problem,), authenticated=False)
    payload = data[offset:]
    if keyring.enabled:
        plain = keyring.open(payload, aad=label)
        if plain is None:
            return Decoded((), (_undecryptable(payload),), authenticated=False)
        payload = plain
    results = _unwrap(payload, _Budget(), depth=0)
    if not keyring.enabled:
        results = [_explain_encrypted(result, payload) for result in results]
    messages = tuple(r for r in results if not isinstance(r, Problem))
    problems = tuple(r for r in results if isinstance(r, Problem))
    return Decoded(messages, problems, authenticated=True)


def _undecryptable(payload: bytes) -> Problem:
    # A peer without a key sends plaintext that happens to fail decryption; telling the two apart tells the
    # operator which side lacks the key.
    if _reads_as_plaintext(payload):
        return Problem(NOT_ENCRYPTED, "a plaintext packet while encryption is configured")
    return Problem(DECRYPT_FAILED, "no installed key decrypts the packet")


def _reads_as_plaintext(payload: bytes) -> bool:
    if not payload or any(isinstance(r, Problem) for r in _unwrap(payload, _Budget(), depth=0)):
        return False
    if not _looks_encrypted(payload):
        return True
    # A ciphertext starts with a byte that is also a message type (ping, indirect ping): about 1 % of random
    # nonces then read as such a message. A real one fills the packet exactly; a ciphertext leaves its tag behind.
    try:
        return _parse_message(payload, final=True, packet=True)[1] == len(payload)
    except _Malformed:
        return False


def _looks_encrypted(payload: bytes) -> bool:
    return len(payload) >= 1 + NONCE_SIZE + TAG_SIZE and payload[0] <= ENCRYPTION_VERSION


def _explain_encrypted(result: Message | Problem, payload: bytes) -> Message | Problem:
    if isinstance(result, Problem) and result.reason in (BAD_BODY, TRUNCATED) and _looks_encrypted(payload):
        return Problem(UNEXPECTED_ENCRYPTION, "the packet looks encrypted but no key is configured")
    return result


def _unwrap(data: bytes, budget: _Budget, depth: int) -> list[Message | Problem]:
    """The messages inside CRC, compress and compound wrappers (Go nests only compress(compound) and CRC(...))."""
    if depth > MAX_NESTING:
        return [Problem(TOO_DEEP, f"wrappers nested deeper than {MAX_NESTING}")]
    try:
        if not data:
            _fail(TRUNCATED, "empty message")
        if data[0] == MessageType.HAS_CRC:
            return _unwrap(_verify_crc(data), budget, depth + 1)
        if data[0] == MessageType.COMPRESS:
            return _unwrap(budget.decompress(data[1:]), budget, depth + 1)
        if data[0] == MessageType.COMPOUND:
            return [r for part in _split_compound(data[1:]) for r in _unwrap_part(part, budget, depth + 1)]
        return [_parse_message(data, final=True, packet=True)[0]]
    except _Malformed as error:
        return [error.problem]


def _unwrap_part(part: bytes | Problem, budget: _Budget, depth: int) -> list[Message | Problem]:
    return [part] if isinstance(part, Problem) else _unwrap(part, budget, depth)


def _verify_crc(data: bytes) -> bytes:
    if len(data) < 5:
        _fail(TRUNCATED, "CRC header")
    (expected,) = struct.unpack_from(">I", data, 1)
    if zlib.crc32(data[5:]) != expected:
        _fail(BAD_CRC, f"checksum {zlib.crc32(data[5:]):08x}, header says {expected:08x}")
    return data[5:]


def _split_compound(body: bytes) -> list[bytes | Problem]:
    """The parts of a compound body `[n][n x u16 BE length][parts]`; parts cut off by the end become Problems."""
    if not body:
        _fail(TRUNCATED, "compound count")
    count, table_end = body[0], 1 + 2 * body[0]
    if len(body) < table_end:
        _fail(TRUNCATED, "compound length table")
    lengths = struct.unpack_from(f">{count}H", body, 1)
    parts: list[bytes | Problem] = []
    offset = table_end
    for length in lengths:
        if offset + length > len(body):
            parts.append(Problem(TRUNCATED, f"compound part of {length} bytes cut off"))
        else:
            parts.append(body[offset : offset + length])
        offset += length
    return parts


# ---- decoding streams ----


def decode_stream(buffer: bytes, *, keyring: Keyring, label: bytes = b"") -> StreamResult:
    """Read the one message at the start of a stream buffer; call again with more bytes while `need_more`.

    Never raises. A stream without encryption when a key is configured (or the reverse) is a Problem, as in
    memberlist with GossipVerifyIncoming (MetalLB's default).
    """
    buffer = bytes(buffer)
    try:
        got, offset = _split_label(buffer, final=False)
        _check_label(got, label)
        message, used = _read_stream_body(buffer[offset:], keyring=keyring, label=label)
    except _NeedMore:
        if len(buffer) > MAX_STREAM_BYTES + 5 + MAX_LABEL + 2:
            problem = Problem(TOO_LARGE, f"stream exceeds {MAX_STREAM_BYTES} bytes")
            return StreamResult(None, problem, need_more=False, consumed=len(buffer))
        return StreamResult(None, None, need_more=True, consumed=0)
    except _Malformed as error:
        return StreamResult(None, error.problem, need_more=False, consumed=len(buffer))
    return StreamResult(message, None, need_more=False, consumed=offset + used)


def _read_stream_body(data: bytes, *, keyring: Keyring, label: bytes) -> tuple[Message, int]:
    if not data:
        raise _NeedMore
    if data[0] != MessageType.ENCRYPT:
        if keyring.enabled:
            _fail(NOT_ENCRYPTED, "a plaintext stream while encryption is configured")
        return _read_plain_stream(data, final=False)
    if not keyring.enabled:
        _fail(UNEXPECTED_ENCRYPTION, "an encrypted stream but no key is configured")
    if len(data) < 5:
        raise _NeedMore
    (length,) = struct.unpack_from(">I", data, 1)
    _capped(length, MAX_STREAM_BYTES, "encrypted stream")
    if len(data) < 5 + length:
        raise _NeedMore
    plain = keyring.open(data[5 : 5 + length], aad=data[:5] + label)
    if plain is None:
        _fail(DECRYPT_FAILED, "no installed key decrypts the stream")
    message, _ = _read_plain_stream(plain, final=True)
    return message, 5 + length


def _read_plain_stream(data: bytes, *, final: bool) -> tuple[Message, int]:
    """A stream message, LZW-compressed (Go's default: one compress wrapper around the whole message) or not."""
    if not data or data[0] != MessageType.COMPRESS:
        return _parse_message(data, final=final, packet=False)
    reader = _Reader(data[1:], final=final)
    reader.next_object()  # only to find where the compress wrapper ends, or that it has not arrived yet
    used = 1 + reader.offset
    # Go reads one level only: a compress wrapper inside is an unknown message type here too
    message, _ = _parse_message(_Budget().decompress(data[1:used]), final=True, packet=False)
    return message, used


__all__ = [
    "BAD_BODY",
    "BAD_COMPRESS",
    "BAD_CRC",
    "BAD_LABEL",
    "DECRYPT_FAILED",
    "LABEL_MISMATCH",
    "MAX_DECOMPRESSED",
    "MAX_PUSH_NODES",
    "MAX_STREAM_BYTES",
    "MAX_USER_STATE",
    "NOT_ENCRYPTED",
    "TOO_DEEP",
    "TOO_LARGE",
    "TOO_MANY_PARTS",
    "TRUNCATED",
    "UNEXPECTED_ENCRYPTION",
    "UNKNOWN_TYPE",
    "Decoded",
    "KeyFileError",
    "Keyring",
    "LzwError",
    "Problem",
    "StreamResult",
    "decode_message",
    "decode_packet",
    "decode_stream",
    "encode_message",
    "encode_packet",
    "encode_stream",
    "lzw_decompress",
    "metallb_key",
    "read_secret_key",
]
