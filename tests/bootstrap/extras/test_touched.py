"""bootstrap.extras.touched: an install that only added distributions which cannot change
what the core imports skips the import check; everything else keeps it. (Through real
installs: test_core.py's breaker and shadow packages, test_install.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.extras.touched import (
    new_dist_infos,
    recorded_files,
    top_level_name,
    why_import_check,
)

SITE = "lib/python3.11/site-packages"
BEFORE = {
    f"{SITE}/yaml",
    f"{SITE}/yaml/__init__.py",
    f"{SITE}/six.py",
    f"{SITE}/_cffi_backend.cpython-311-x86_64-linux-gnu.so",
    f"{SITE}/PyYAML-6.0.dist-info",
    "bin/prefect",
}


@pytest.mark.parametrize(
    ("name", "top"),
    [
        ("yaml", "yaml"),
        ("six.py", "six"),
        ("_cffi_backend.cpython-311-x86_64-linux-gnu.so", "_cffi_backend"),
        ("rattler.abi3.so", "rattler"),
        ("breaker.pth", "breaker"),
        ("PyYAML-6.0.dist-info", None),
        ("__pycache__", None),
    ],
)
def test_the_name_an_entry_provides(name, top) -> None:
    assert top_level_name(name) == top


OPTIONAL = {"simplejson", "brotli"}  # what the core imports when it is there


def test_new_distributions_with_new_names_skip_the_import_check() -> None:
    added = [f"{SITE}/rich/__init__.py", f"{SITE}/rich-13.0.dist-info/RECORD", "bin/rich"]
    assert why_import_check(SITE, BEFORE, added, optional=OPTIONAL) is None
    commands = why_import_check(
        SITE, BEFORE, added, optional=OPTIONAL, plugin_groups=["console_scripts"]
    )
    assert commands is None


@pytest.mark.parametrize(
    ("added", "removed", "conda", "reason"),
    [
        ([f"{SITE}/breaker.pth"], [], False, "a .pth file runs in every interpreter"),
        ([f"{SITE}/sitecustomize.py"], [], False, "sitecustomize runs in every interpreter"),
        ([f"{SITE}/yaml.py"], [], False, "the environment has a module 'yaml' already"),
        ([f"{SITE}/six/__init__.py"], [], False, "the environment has a module 'six' already"),
        ([f"{SITE}/yaml/__init__.py"], [], False, "existed and was overwritten"),
        (["bin/prefect"], [], False, "bin/prefect existed and was overwritten"),
        ([], ["pydantic 1.10.27"], False, "replaced or removed (pydantic 1.10.27)"),
        ([], [], True, "the conda step changed the environment"),
        ([f"{SITE}/simplejson/__init__.py"], [], False, "imports 'simplejson' when it is there"),
        (["lib/python3.11/sitecustomize.py"], [], False, "outside site-packages"),
    ],
    ids=["pth", "sitecustomize", "module-beside-package", "package-beside-module",
         "overwritten", "script-overwritten", "upgrade", "conda", "optional-import",
         "data-on-the-path"],
)  # fmt: skip
def test_anything_that_can_change_the_cores_imports_keeps_the_check(
    added, removed, conda, reason
) -> None:
    assert reason in why_import_check(SITE, BEFORE, added, removed, conda, optional=OPTIONAL)


def test_plugins_and_an_unknown_core_keep_the_check() -> None:
    added = [f"{SITE}/newplugin/__init__.py"]
    assert "plugins the core may load" in why_import_check(
        SITE, BEFORE, added, optional=OPTIONAL, plugin_groups=["console_scripts", "fsspec.specs"]
    )
    assert "optional imports are not on record" in why_import_check(SITE, BEFORE, added)


def test_the_added_files_come_from_the_new_records(tmp_path: Path) -> None:
    site = tmp_path / SITE
    old = site / "old-1.0.dist-info"
    new = site / "rich-13.0.dist-info"
    old.mkdir(parents=True)
    new.mkdir()
    (new / "RECORD").write_text(
        "rich/__init__.py,sha256=x,10\nrich-13.0.dist-info/RECORD,,\n../../../bin/rich,,\n"
    )
    before = {f"{SITE}/old-1.0.dist-info"}
    infos = new_dist_infos(tmp_path, SITE, before)
    assert infos == [f"{SITE}/rich-13.0.dist-info"]
    assert recorded_files(tmp_path, SITE, infos) == [
        f"{SITE}/rich/__init__.py",
        f"{SITE}/rich-13.0.dist-info/RECORD",
        "bin/rich",
    ]
    (new / "RECORD").unlink()
    assert recorded_files(tmp_path, SITE, infos) is None  # unknown: keep the check


def test_the_cores_optional_imports_are_recorded(tmp_path: Path, monkeypatch) -> None:
    """What a module tries to import and does without (requests: simplejson) is recorded;
    what exists, and what is not installed at all, is not an optional import."""
    from bootstrap.extras.touched import OPTIONAL_IMPORTS, optional_imports, record_optional_imports

    (tmp_path / "fake_core.py").write_text(
        "try:\n    import no_such_simplejson\nexcept ImportError:\n    pass\nimport json\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    names = record_optional_imports(tmp_path, ["fake_core", "not_installed_either"])
    assert "no_such_simplejson" in names
    assert "json" not in names
    assert (tmp_path / OPTIONAL_IMPORTS).is_file()
    assert optional_imports(tmp_path) == names
