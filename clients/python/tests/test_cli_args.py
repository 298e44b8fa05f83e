"""The `opsdeck` command's arguments and configuration, without a server."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from opsdeck_client.cli import build_parser, main
from opsdeck_client.cli.config import ConfigError, resolve
from opsdeck_client.cli.output import print_table

ENV = {"OPSDECK_URL": "http://env.example", "OPSDECK_KEY_ID": "key_env", "OPSDECK_SECRET": "sk_env"}


def profiles(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    return {"OPSDECK_CONFIG": str(path)}


def test_commands_parse_into_their_fields() -> None:
    parser = build_parser()
    args = parser.parse_args(["jobs", "submit", "system.echo", "--payload", '{"message": "hi"}', "--wait"])
    assert (args.area, args.verb, args.type, args.payload, args.wait) == (
        "jobs",
        "submit",
        "system.echo",
        '{"message": "hi"}',
        True,
    )
    args = parser.parse_args(["request", "get", "/api/v1/jobs", "-o", "out.json"])
    assert (args.method, args.path, args.body, args.output) == ("GET", "/api/v1/jobs", None, "out.json")
    args = parser.parse_args(["scans", "download", "s1", "-o", "f.pdf"])
    assert (args.id, args.output) == ("s1", "f.pdf")


def test_common_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--table", "jobs", "list"]).table is True
    assert parser.parse_args(["jobs", "list", "--table"]).table is True
    assert parser.parse_args(["jobs", "list"]).table is False
    before = parser.parse_args(["--profile", "staging", "jobs", "get", "j1"])
    after = parser.parse_args(["jobs", "get", "j1", "--profile", "staging", "--timeout", "5"])
    assert before.profile == after.profile == "staging" and after.timeout == 5


def test_a_missing_command_or_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["jobs"], ["jobs", "get"], ["jobs", "submit", "x", "--priority", "urgent"]):
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args(argv)
        assert stopped.value.code == 2
    assert "usage: opsdeck" in capsys.readouterr().err


def test_the_environment_configures_it() -> None:
    assert resolve(None, ENV).url == "http://env.example"


def test_a_profile_fills_in_what_the_environment_lacks_and_a_named_profile_wins(tmp_path: Path) -> None:
    config = profiles(
        tmp_path,
        '[default]\nurl = "http://default.example"\nkey_id = "key_d"\nsecret = "sk_d"\n'
        '[staging]\nurl = "http://staging.example"\nkey_id = "key_s"\nsecret = "sk_s"\n',
    )
    assert resolve(None, config).key_id == "key_d"
    assert (
        resolve(None, {**config, "OPSDECK_KEY_ID": "key_e", "OPSDECK_SECRET": "sk_e"}).url == "http://default.example"
    )
    assert resolve(None, {**config, **ENV}).key_id == "key_env"
    assert resolve("staging", {**config, **ENV}).key_id == "key_s"
    assert resolve(None, {**config, "OPSDECK_PROFILE": "staging"}).secret == "sk_s"
    with pytest.raises(ConfigError, match=r"no profile \[prod\]"):
        resolve("prod", config)


def test_missing_configuration_exits_2_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"OPSDECK_URL": "http://x", "OPSDECK_CONFIG": str(tmp_path / "none.toml")}
    assert main(["jobs", "get", "j1"], env) == 2
    assert "no key_id, secret" in capsys.readouterr().err


def test_a_readable_profiles_file_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = profiles(tmp_path, '[default]\nurl = "http://d"\nkey_id = "k"\nsecret = "s"\n')
    os.chmod(config["OPSDECK_CONFIG"], 0o644)
    resolve(None, config)
    assert "chmod 600" in capsys.readouterr().err


def test_bad_json_is_a_usage_error_before_any_request(capsys: pytest.CaptureFixture[str]) -> None:
    # The URL is unreachable: reaching it would exit 3, not 2.
    env = {**ENV, "OPSDECK_URL": "http://127.0.0.1:9", "OPSDECK_CONFIG": "/nonexistent"}
    assert main(["--retries", "0", "jobs", "submit", "system.echo", "--payload", "{not json"], env) == 2
    assert "--payload" in capsys.readouterr().err
    assert main(["--retries", "0", "jobs", "submit", "system.echo", "--payload", "[1]"], env) == 2
    assert main(["--retries", "0", "request", "POST", "/api/v1/jobs", "{"], env) == 2
    assert main(["--retries", "0", "scans", "upload", "/nonexistent/file.pdf"], env) == 2


def test_no_answer_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**ENV, "OPSDECK_URL": "http://127.0.0.1:9", "OPSDECK_CONFIG": "/nonexistent"}
    assert main(["--retries", "0", "jobs", "get", "j1"], env) == 3
    assert "no answer" in capsys.readouterr().err


def test_a_table_shows_scalar_fields_as_columns() -> None:
    out = io.StringIO()
    print_table([{"id": "j1", "status": "dead", "payload": {"a": 1}}, {"id": "j2", "status": "queued"}], out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["id", "status"] and lines[2].split() == ["j1", "dead"]
    out = io.StringIO()
    print_table({"id": "j1", "result": {"message": "x" * 100}}, out)
    assert json.dumps({"message": "x"})[:5] in out.getvalue() and "…" in out.getvalue()
