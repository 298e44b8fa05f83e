"""What is refused before any scan (OWASP File Upload Cheat Sheet): names, extensions that are
not allowed, content whose type (detected from the bytes by libmagic) does not match its
extension, and executables or scripts whatever they are called."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

import magic

#: The MIME types libmagic may report for each extension Opsdeck knows how to allow.
EXPECTED_TYPES: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf"}),
    "png": frozenset({"image/png"}),
    "jpg": frozenset({"image/jpeg"}),
    "jpeg": frozenset({"image/jpeg"}),
    "gif": frozenset({"image/gif"}),
    "webp": frozenset({"image/webp"}),
    "txt": frozenset({"text/plain"}),
    "csv": frozenset({"text/csv", "text/plain", "application/csv"}),
    "docx": frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/zip"}),
    "xlsx": frozenset({"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/zip"}),
    "odt": frozenset({"application/vnd.oasis.opendocument.text", "application/zip"}),
    "zip": frozenset({"application/zip"}),
}
#: Leading bytes of native executables and scripts: PE (MZ), ELF, Mach-O (both byte orders,
#: 32/64-bit) and fat Mach-O / Java class, shebang scripts.
EXECUTABLE_MAGIC = (
    (b"MZ", "a Windows executable (PE/MZ)"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"#!", "a script (#!)"),
)
#: libmagic types that are programs or scripts.
EXECUTABLE_TYPES = re.compile(
    r"application/(x-(dosexec|executable|sharedlib|pie-executable|mach-binary|msdownload|elf|msi|bytecode\.python)|"
    r"java-archive|vnd\.microsoft\.portable-executable)|text/x-(shellscript|script\..+|php|perl|python|ruby|msdos-batch)"
)
#: How much of the file libmagic looks at.
SNIFF_BYTES = 64 * 1024
MAX_NAME_CHARS = 200


class Rejected(ValueError):
    """The upload is refused; the message is the reason shown to the client."""


def display_name(raw: str | None) -> str:
    """The client's file name as safe display text: percent-decoded, last path segment only,
    no control characters, at most MAX_NAME_CHARS. Never used as a path."""
    name = unquote(raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = unicodedata.normalize("NFC", name).strip()
    return name[:MAX_NAME_CHARS] or "unnamed"


def extension(raw: str | None, allowed: list[str]) -> str:
    """The allowed extension of the decoded name, or Rejected: a NUL or control character,
    a trailing dot or space (Windows drops them: `x.php.` is `x.php`), no extension, or a last
    extension outside `allowed` (`x.jpg.php` is a .php file)."""
    name = unquote(raw or "")
    if "\x00" in name:
        raise Rejected("The file name contains a NUL byte.")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise Rejected("The file name contains control characters.")
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base != base.rstrip(". "):
        raise Rejected("The file name ends in a dot or a space.")
    stem, dot, ext = base.rpartition(".")
    ext = ext.lower()
    if not dot or not stem or not ext:
        raise Rejected(f"The file name has no extension; allowed: {', '.join(allowed)}.")
    if ext not in allowed:
        raise Rejected(f"Files ending in .{ext} are not accepted; allowed: {', '.join(allowed)}.")
    return ext


def content_type(head: bytes, ext: str) -> str:
    """The type libmagic detects in the first bytes; Rejected when it is a program or script,
    or does not match the extension."""
    for prefix, what in EXECUTABLE_MAGIC:
        if head.startswith(prefix):
            raise Rejected(f"The file is {what}; executables and scripts are not accepted.")
    detected = magic.from_buffer(head[:SNIFF_BYTES], mime=True) if head else "application/x-empty"
    if EXECUTABLE_TYPES.fullmatch(detected):
        raise Rejected(f"The file is a program or script ({detected}); executables and scripts are not accepted.")
    if detected not in EXPECTED_TYPES.get(ext, frozenset()):
        raise Rejected(f"The content is {detected}, which does not match the .{ext} extension.")
    return detected


def check_allowed(allowed: list[str]) -> list[str]:
    """SCAN_ALLOWED_EXTENSIONS, validated at start: only extensions with known content types."""
    unknown = sorted(set(allowed) - set(EXPECTED_TYPES))
    if unknown:
        raise ValueError(
            f"SCAN_ALLOWED_EXTENSIONS: no content check is known for {', '.join(unknown)}; "
            f"choose from {', '.join(EXPECTED_TYPES)}"
        )
    return allowed
