"""Prefect's configuration file: where the bootstrap finds it, and what it reads from it
(the comparison with prefect's own loader is in test_server.py)."""

from __future__ import annotations

import re

import pytest

from bootstrap.api import prefect_config
from bootstrap.api.client import resolve_api
from bootstrap.api.prefect_config import prefect_settings, user_config_path
from bootstrap.util.errors import SettingsError
from testbed.lume_services import LUME_CONFIG_TOML


def test_prefects_configuration_file_is_found_where_it_is_mounted(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / ".prefect").mkdir(parents=True)
    root_config = tmp_path / "root" / "config.toml"  # stands for /root/.prefect/config.toml
    monkeypatch.setattr(prefect_config, "ROOT_USER_CONFIG", root_config)
    assert user_config_path({"HOME": str(home)}) is None  # neither file: prefect's defaults
    assert resolve_api({"HOME": str(home)}).url == "http://localhost:4200"
    root_config.parent.mkdir()
    root_config.write_text(LUME_CONFIG_TOML)
    assert user_config_path({"HOME": str(home)}) == root_config  # /root/.prefect/config.toml
    (home / ".prefect" / "config.toml").write_text("[server]\nhost = 'http://own'\n")
    assert user_config_path({"HOME": str(home)}) == home / ".prefect" / "config.toml"
    assert resolve_api({"HOME": str(home)}).url == "http://own:4200"
    missing = re.escape("PREFECT__USER_CONFIG_PATH=/nowhere.toml: no such")
    with pytest.raises(SettingsError, match=missing):
        resolve_api({"PREFECT__USER_CONFIG_PATH": "/nowhere.toml"})
    (home / ".prefect" / "config.toml").write_text("[server\n")
    with pytest.raises(SettingsError, match="cannot read Prefect's configuration file"):
        resolve_api({"HOME": str(home)})


def test_references_and_variables_resolve_as_prefect_resolves_them(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\nhost = "http://$LUME_HOST"\nendpoint = "${server.host}:${server.port}/api"\n'
    )
    environ = {"PREFECT__USER_CONFIG_PATH": str(config), "LUME_HOST": "apollo"}
    values = prefect_settings(environ)
    assert values["server.endpoint"] == "http://apollo:4200/api"
    assert values["cloud.api"] == "http://apollo:4200/api"
    environ["PREFECT__SERVER__PORT"] = "4300"  # a variable beats the file and the default
    assert prefect_settings(environ)["cloud.api"] == "http://apollo:4300/api"
