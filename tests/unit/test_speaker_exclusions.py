"""The metallb-excludel2 file: read as MetalLB's speaker reads it, errors named, the last valid list kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_fast.speaker.exclusions import ExclusionError, ExclusionFile, parse_exclusions
from metallb_fast.speaker.layer2 import DEFAULT_EXCLUDED_INTERFACES


def test_the_list_of_the_shipped_configmap_is_read() -> None:
    exclusion = parse_exclusions('announcedInterfacesToExclude: ["^eth1$", "^bond.*"]\n', "f")
    assert exclusion.excludes("eth1") and exclusion.excludes("bond0")
    assert not exclusion.excludes("eth0") and not exclusion.excludes("veth12")  # the defaults are replaced


def test_an_empty_list_excludes_nothing_and_an_empty_file_keeps_the_defaults() -> None:
    assert not parse_exclusions("announcedInterfacesToExclude: []\n", "f").excludes("docker0")
    assert parse_exclusions("", "f").patterns == DEFAULT_EXCLUDED_INTERFACES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("announcedInterfacesToExclude: [\n", "not valid YAML"),
        ("- ^eth0$\n", "expected a mapping"),
        ("announcedInterfacesToExclude: ^eth0$\n", "must be a list of strings"),
        ('announcedInterfacesToExclude: ["(eth"]\n', "not a valid regexp"),
        ("announcedInterfaces: []\n", "unknown field(s) announcedInterfaces"),
    ],
)
def test_an_unusable_file_is_named_with_its_field(text: str, message: str) -> None:
    with pytest.raises(ExclusionError, match=r"excludel2\.yaml: .*") as error:
        parse_exclusions(text, "/etc/metallb/excludel2.yaml")
    assert message in str(error.value)


def test_an_invalid_edit_keeps_the_last_valid_list(tmp_path: Path) -> None:
    path = tmp_path / "excludel2.yaml"
    assert ExclusionFile.load(path).current.patterns == DEFAULT_EXCLUDED_INTERFACES  # no file: the defaults
    path.write_text('announcedInterfacesToExclude: ["^eth1$"]\n')
    file = ExclusionFile.load(path)
    assert file.current.excludes("eth1")
    assert file.refresh() is False  # unchanged
    path.write_text('announcedInterfacesToExclude: ["(broken"]\n')
    assert file.refresh() is False and file.current.excludes("eth1")
    path.write_text('announcedInterfacesToExclude: ["^eth2$"]\n')
    assert file.refresh() is True and file.current.excludes("eth2") and not file.current.excludes("eth1")
    with pytest.raises(ExclusionError):
        ExclusionFile.load(tmp_path)  # a directory: cannot be read, at start that stops the speaker
