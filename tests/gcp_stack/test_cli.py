"""`python -m gcp_stack …` against the fake control plane."""

from __future__ import annotations

import json
import time

import pytest

from gcp_stack.__main__ import COMMANDS, DETAILS, main
from local_stack.ports import free_port
from tests.gcp_stack.conftest import PROJECT_NUMBER

PROJECT = "skybridge-dev-000000"
BUCKET = f"{PROJECT}-skybridge-dev-assets"


def test_deploy_writes_the_outputs_the_aws_stack_reads(cli, deployed, tmp_path):
    assert cli("deploy", "--auto-approve") == 0
    outputs = json.loads((tmp_path / "dev.json").read_text())
    assert {"ingest_url", "credential_config", "service_account", "bucket", "topic",
            "dead_letter_topic"} <= outputs.keys()  # fmt: skip
    assert outputs["ingest_url"].startswith("https://")
    assert outputs["service_account"] == f"skybridge-dev-relay@{PROJECT}.iam.gserviceaccount.com"
    assert outputs["bucket"] == BUCKET
    assert outputs["topic"] == f"projects/{PROJECT}/topics/skybridge-dev-submissions"
    assert outputs["dead_letter_topic"] == f"projects/{PROJECT}/topics/skybridge-dev-dead-letter"
    assert outputs["receipts_topic"] == f"projects/{PROJECT}/topics/skybridge-dev-receipts"
    assert outputs["receipts_subscription"] == (
        f"projects/{PROJECT}/subscriptions/skybridge-dev-receipts-relay"
    )


def test_credential_configuration_is_aws_external_account(cli, deployed, tmp_path):
    assert cli("deploy", "--auto-approve") == 0
    config = json.loads((tmp_path / "dev.json").read_text())["credential_config"]
    assert config["type"] == "external_account"
    assert config["audience"] == (
        f"//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
        "workloadIdentityPools/skybridge-dev-aws/providers/aws-relay"
    )
    assert config["token_url"] == "https://sts.googleapis.com/v1/token"
    assert config["subject_token_type"] == "urn:ietf:params:aws:token-type:aws4_request"
    source = config["credential_source"]
    assert source["environment_id"] == "aws1"
    assert source["imdsv2_session_token_url"] == "http://169.254.169.254/latest/api/token"
    assert source["regional_cred_verification_url"] == (
        "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    )


def test_plan_after_deploy_exits_0_with_detailed_exitcode(cli, deployed, capsys):
    assert cli("plan", "--detailed-exitcode") == 0
    assert "no changes" in capsys.readouterr().out


def test_plan_of_an_empty_project_exits_2_and_prints_json(cli, capsys):
    assert cli("plan", "--json", "--detailed-exitcode") == 2
    plan = json.loads(capsys.readouterr().out)
    assert {change["action"] for change in plan["changes"]} == {"create"}
    bucket = next(c for c in plan["changes"] if c["key"] == f"bucket/{BUCKET}")
    assert {"path": "versioning", "before": None, "after": {"enabled": True}} in bucket["fields"]


def test_plan_text_shows_the_drifted_field(cli, deployed, capsys):
    deployed.store[f"storage:b/{BUCKET}"]["versioning"] = {"enabled": False}
    assert cli("plan") == 0
    out = capsys.readouterr().out
    assert f"~ bucket/{BUCKET}" in out
    assert "versioning.enabled: false → true" in out
    assert "Plan: 1 to update." in out


def test_destroy_refuses_a_non_empty_bucket_without_allow_destroy_data(cli, deployed, capsys):
    deployed.store[f"storage:b/{BUCKET}/o/a-submission"] = {"name": "a-submission"}
    assert cli("destroy", "--auto-approve") == 1
    out = capsys.readouterr().out
    assert f"bucket/{BUCKET} (holds 1 object version)" in out
    assert "pass --allow-destroy-data" in out
    assert any(key.startswith("pubsub:") for key in deployed.store)  # refused before anything
    assert cli("destroy", "--auto-approve", "--allow-destroy-data") == 0
    left = [key for key in deployed.store if key.startswith("storage:")]
    assert left == [f"storage:b/{PROJECT}-gcp-stack-locks"]  # only the (empty) lock bucket


def test_destroy_force_is_the_older_name_of_allow_destroy_data(cli, deployed):
    deployed.store[f"storage:b/{BUCKET}/o/a-submission"] = {"name": "a-submission"}
    assert cli("destroy", "--auto-approve", "--force") == 0
    assert f"storage:b/{BUCKET}" not in deployed.store


def test_uptime_check_watches_the_aws_api_when_its_url_is_known(cli, fake, tmp_path, capsys):
    aws = tmp_path / "cdk-outputs.json"
    aws.write_text(json.dumps({"skybridge-dev": {"ApiUrl": "https://api.example.com"}}))
    assert cli("deploy", "--auto-approve", "--aws-outputs", str(aws)) == 0
    (check,) = [v for k, v in fake.store.items() if "/uptimeCheckConfigs/" in k]
    assert check["monitoredResource"]["labels"]["host"] == "api.example.com"
    assert check["httpCheck"]["path"] == "/healthz"
    assert check["httpCheck"]["useSsl"] is True
    # The alert on it selects it by the id the server assigned.
    (alert,) = [
        v for k, v in fake.store.items()
        if "/alertPolicies/" in k and v["displayName"].endswith("API unreachable")
    ]  # fmt: skip
    check_id = check["name"].rsplit("/", 1)[1]
    assert f'metric.labels.check_id="{check_id}"' in json.dumps(alert["conditions"]).replace(
        '\\"', '"'
    )


def test_without_credentials_it_says_how_to_log_in(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GCP_STACK_API_ENDPOINT", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    assert main(["plan", "--env", "dev"]) == 1
    assert "gcloud auth application-default login" in capsys.readouterr().out


MISUSES = {
    "unknown environment": (["synth", "--env", "nope"], "environments/nope.toml"),
    "unknown command": (["apply"], "invalid choice: 'apply'"),
    "option of another command": (["synth", "--force"], "unrecognized arguments: --force"),
    "nonexistent region": (["synth", "--region", "mars-north1"], "not a Cloud Functions region"),
    "region pattern keeps its brackets": (["synth", "--region", "MARS"], "^[a-z]+-[a-z]+"),
    "invalid project id": (["synth", "--project", "Bad_Project"], "--project 'Bad_Project'"),
    "api url without a host": (["synth", "--api-url", "notaurl"], "not an http(s) URL"),
    "api endpoint without a host": (["plan", "--api-endpoint", "notaurl"], "not an http(s) URL"),
    "malformed aws outputs": (["synth", "--aws-outputs", "{bad}"], "is not readable JSON"),
    "config error under --detailed-exitcode": (
        ["plan", "--env", "nope", "--detailed-exitcode"], "environments/nope.toml"),
    "unreachable endpoint": (["plan", "--api-endpoint", "{closed}"], "calling http://127.0.0.1:"),
}  # fmt: skip


@pytest.mark.parametrize("case", MISUSES, ids=list(MISUSES))
def test_misuse_is_one_sentence_and_exit_1(case, tmp_path, capsys):
    argv, sentence = MISUSES[case]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    argv = [a.replace("{bad}", str(bad)).replace("{closed}", f"http://127.0.0.1:{free_port()}")
            for a in argv]  # fmt: skip
    started = time.monotonic()
    assert main(argv) == 1
    assert time.monotonic() - started < 20  # an unreachable endpoint fails fast
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert sentence in text
    assert "Traceback" not in text
    (line,) = [line for line in text.splitlines() if line.startswith("error:")]
    assert sentence in line


def test_outputs_of_a_stack_never_deployed_is_an_error(cli, capsys):
    assert cli("outputs") == 1
    assert "deploy --env dev` first" in capsys.readouterr().out


@pytest.mark.parametrize("answer", ["y", "yes", "YES"])
def test_yes_at_the_prompt_applies(cli, fake, monkeypatch, capsys, answer):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda *_: answer)
    assert cli("deploy") == 0
    assert "[y/N]" in capsys.readouterr().out
    assert any("/functions/" in key for key in fake.store)


def test_no_at_the_prompt_changes_nothing_and_exits_1(cli, fake, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda *_: "no")
    assert cli("deploy") == 1
    assert "nothing changed" in capsys.readouterr().out
    assert not any("/functions/" in key for key in fake.store)


def test_long_field_diffs_are_shown_whole(cli, deployed, capsys):
    deployed.store[f"storage:b/{BUCKET}"]["lifecycle"] = {"rule": []}
    assert cli("plan") == 0
    out = capsys.readouterr().out
    assert '"daysSinceNoncurrentTime": 30' in out and '"isLive": false' in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_own_help_as_terraform_lays_it_out(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m gcp_stack {command}")
    assert DETAILS[command].split()[0] in text  # its own description, not the summary only
    own, common = text.find(f"\n{command} options:"), text.find("\noptions of every command:")
    assert common > 0 and (own == -1 or own < common)  # the command's options come first


def test_plan_help_names_what_a_terraform_user_looks_for(capsys):
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    text = capsys.readouterr().out
    for option in ("--out FILE, -out FILE", "--target KEY", "--replace KEY", "--destroy",
                   "--detailed-exitcode", "--allow-destroy-data", "examples:"):  # fmt: skip
        assert option in text


def test_deploy_refuses_to_apply_without_a_terminal(cli, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli("deploy") == 1
    assert "--auto-approve" in capsys.readouterr().out


def test_plan_shows_the_project_number_in_keys_and_takes_either_form(cli, fake, capsys):
    assert cli("plan") == 0
    out = capsys.readouterr().out
    assert f"service-{PROJECT_NUMBER}@gcp-sa-pubsub" in out and "{project_number}" not in out
    agent = "serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    key = f"iam_member/topic:skybridge-dev-dead-letter roles/pubsub.publisher {agent}"
    assert cli("plan", "--json", "--target", key) == 0
    keys = [c["key"] for c in json.loads(capsys.readouterr().out)["changes"]]
    assert key.replace("{project_number}", PROJECT_NUMBER) in keys


def test_a_value_known_only_after_apply_says_so(cli, deployed, capsys):
    assert cli("plan", "--region", "europe-west4") == 0  # a new trigger: a new subscription
    out = capsys.readouterr().out
    assert 'subscription_id=\\"(known after apply)\\"' in out and "{output:" not in out
