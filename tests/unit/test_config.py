"""Configuration: the shipped file, overrides, and errors that name the setting."""

from pathlib import Path

import pytest

from signalml.config import Settings, env_overrides, load_settings
from signalml.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_file_spells_out_exactly_the_defaults_but_the_feature_selection():
    shipped = load_settings(REPO / "signalml.yaml", environ={}).model_dump()
    built_in = Settings().model_dump()
    # the project serves the wide selection; the library's default stays the classic thirty
    assert shipped["features"].pop("feature_sets") == ("alpha158", "us_equity", "classic")
    assert built_in["features"].pop("feature_sets") == ("classic",)
    assert shipped == built_in


def test_the_shipped_kafka_version_matches_the_pom():
    pom = (REPO / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{Settings().kafka.version}</kafka.version>" in pom


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    file = tmp_path / "signalml.yaml"
    file.write_text("ensemble:\n  method: average\nkafka:\n  port: 19092\n")
    settings = load_settings(file, environ={})
    assert settings.ensemble.method == "average"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.features.lookbacks == (5, 10, 20, 60)
    assert settings.state_dir == tmp_path / ".signalml"


def test_environment_variables_override_the_file(tmp_path):
    file = tmp_path / "signalml.yaml"
    file.write_text("kafka:\n  port: 19092\n")
    environ = {
        "SIGNALML__KAFKA__PORT": "29092",
        "SIGNALML__FEATURES__LOOKBACKS": "[20, 5]",
        "SIGNALML__KAFKA__TOPICS__BARS__PARTITIONS": "8",
        "UNRELATED": "x",
    }
    settings = load_settings(file, environ=environ)
    assert settings.kafka.port == 29092
    assert settings.features.lookbacks == (5, 20)
    assert settings.kafka.topics.bars.partitions == 8
    assert settings.kafka.topics.bars.name == "bars"


def test_env_overrides_nest_by_double_underscore():
    assert env_overrides({"SIGNALML__SERVING__DYNAMIC_BATCHING__ENABLED": "false"}) == {
        "serving": {"dynamic_batching": {"enabled": False}}
    }


@pytest.mark.parametrize(
    "override, named",
    [
        ({"ensemble": {"method": "median"}}, ["ensemble.method", "'rank_average', 'average', 'ic_weighted', 'stacking' or 'rank_vote'"]),
        ({"training": {"window": "rolling"}}, ["training.window", "'sliding' or 'expanding'"]),
        ({"kafka": {"port": 70000}}, ["kafka.port", "65535"]),
        ({"kafka": {"prot": 1}}, ["kafka.prot", "unknown setting"]),
        ({"features": {"lookbacks": [5, 1]}}, ["features.lookbacks", ">= 2"]),
        ({"features": {"macd": {"fast": 30}}}, ["features.macd", "below macd.slow"]),
        ({"triton": {"grpc_port": 8000}}, ["triton", "must differ"]),
        ({"training": {"label_horizon_bars": 3}}, ["training", "label_horizon_bars (3)"]),
        ({"kafka": {"topics": {"bars": {"name": "bad topic"}}}}, ["kafka.topics.bars.name"]),
        ({"kafka": {"topics": {"engine_lease": {"partitions": 2}}}}, ["kafka.topics", "engine_lease.partitions must be 1"]),
        ({"serving": {"lease_session_timeout_s": 3}}, ["serving.lease_session_timeout_s", "greater than or equal to 6"]),
        ({"serving": {"max_in_flight": 0}}, ["serving.max_in_flight", "greater than or equal to 1"]),
        ({"triton": {"endpoints": ["gpu-1"]}}, ["triton.endpoints", "'gpu-1' is not host:port"]),
        ({"triton": {"endpoints": ["gpu-1:99999"]}}, ["triton.endpoints", "is not host:port"]),
        ({"triton": {"endpoints": ["gpu-1:8001", "gpu-1:8001"]}}, ["triton.endpoints", "listed twice"]),
    ],
)
def test_a_bad_setting_fails_with_its_name_and_the_allowed_values(override, named):
    with pytest.raises(ConfigError) as error:
        load_settings(REPO / "signalml.yaml", environ={}, overrides=override)
    for text in named:
        assert text in str(error.value)


def test_the_triton_endpoints_default_to_the_local_server_and_come_from_the_environment():
    assert load_settings(REPO / "signalml.yaml", environ={}).triton.grpc_urls == ["127.0.0.1:8001"]
    environ = {"SIGNALML__TRITON__ENDPOINTS": '["gpu-1:8001", "10.0.0.7:9001"]'}
    assert load_settings(REPO / "signalml.yaml", environ=environ).triton.grpc_urls == ["gpu-1:8001", "10.0.0.7:9001"]


def test_a_bad_environment_value_names_the_setting():
    with pytest.raises(ConfigError, match="kafka.port"):
        load_settings(REPO / "signalml.yaml", environ={"SIGNALML__KAFKA__PORT": "abc"})


def test_a_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_a_file_that_is_not_a_mapping_is_an_error(tmp_path):
    file = tmp_path / "signalml.yaml"
    file.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(file, environ={})
