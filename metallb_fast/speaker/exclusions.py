"""The interfaces never announced from: the `metallb-excludel2` ConfigMap, mounted as a file, as MetalLB reads it.

    announcedInterfacesToExclude: ["^docker.*", "^veth.*", ...]   # regular expressions, matched anywhere

A missing file means MetalLB's default list. The file is read again whenever the speaker rescans its links (a
ConfigMap edit reaches the mount within the kubelet's sync period); an invalid edit is reported and the last valid
list keeps applying.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from metallb_fast.speaker.layer2 import InterfaceExclusion

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("/etc/metallb/excludel2.yaml")
FIELD = "announcedInterfacesToExclude"


class ExclusionError(ValueError):
    """The file cannot be used; the message names the file and the field."""


def parse_exclusions(text: str, source: str) -> InterfaceExclusion:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ExclusionError(f"{source}: not valid YAML: {error}") from error
    if document is None:
        return InterfaceExclusion()
    if not isinstance(document, dict):
        raise ExclusionError(f"{source}: expected a mapping with {FIELD}, got {type(document).__name__}")
    unknown = sorted(str(key) for key in document if key != FIELD)
    if unknown:
        raise ExclusionError(f"{source}: unknown field(s) {', '.join(unknown)}; the only field is {FIELD}")
    patterns = document.get(FIELD)
    if patterns is None:
        return InterfaceExclusion()
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ExclusionError(f"{source}: {FIELD} must be a list of strings (regular expressions)")
    try:
        return InterfaceExclusion(tuple(patterns))
    except ValueError as error:
        raise ExclusionError(f"{source}: {error}") from error


@dataclass
class ExclusionFile:
    """The file's current list; `refresh()` rereads it and says whether the list changed."""

    path: Path
    current: InterfaceExclusion

    @classmethod
    def load(cls, path: Path) -> ExclusionFile:
        """At start: an unusable file is an ExclusionError (the speaker must not announce on interfaces the operator
        excluded); no file at all means the default list."""
        return cls(path, _read(path))

    def refresh(self) -> bool:
        try:
            found = _read(self.path)
        except ExclusionError as error:
            log.error("%s; keeping the last valid list", error, extra={"op": "excludeL2"})
            return False
        if found == self.current:
            return False
        log.info("interfaces to exclude changed", extra={"op": "excludeL2", "patterns": list(found.patterns)})
        self.current = found
        return True


def _read(path: Path) -> InterfaceExclusion:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return InterfaceExclusion()
    except OSError as error:
        raise ExclusionError(f"{path}: cannot be read: {error}") from error
    return parse_exclusions(text, str(path))
