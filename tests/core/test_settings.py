"""Settings: parsing, defaults, and errors that name the variable without leaking secrets."""
import pytest

from core.accounts import parse_proxy
from core.settings import SettingsError, from_env

KEY = "ab" * 40
PASSWORD = "s3cr3t-pass"


def test_defaults():
    s = from_env({})
    assert s.accounts == () and s.poll_interval == 0.5 and s.orders_interval == 2.0 and s.cache_ttl == 5.0
    assert s.rate_limit == "100/minute" and s.port == 5000 and s.redis_url is None
    assert s.lighter_ws_url == "wss://mainnet.zklighter.elliot.ai/stream"
    assert s.requests_per_minute_per_egress == 60
    assert s.ws_max_clients == 10000 and from_env({"WS_MAX_CLIENTS": "50"}).ws_max_clients == 50


def test_accounts_and_ws_url_derived_from_base():
    s = from_env({"Lighter_1_A_Account_Index": "42", "Lighter_1_A_API_KEY_Index": "4", "Lighter_1_A_PRIVATE": KEY,
                  "Lighter_2_B_Account_Index": "7", "LIGHTER_BASE_URL": "http://127.0.0.1:8765"})
    assert [(a.group, a.name, a.account_index) for a in s.accounts] == [(1, "A", 42), (2, "B", 7)]
    assert s.accounts[0].private_key.reveal() == KEY and not s.accounts[0].public_only
    assert s.accounts[1].public_only
    assert s.lighter_ws_url == "ws://127.0.0.1:8765/stream"
    assert KEY not in repr(s)


@pytest.mark.parametrize("text", [f"http://user:{PASSWORD}@10.0.0.1:3128", f"10.0.0.1:3128:user:{PASSWORD}"])
def test_proxy_forms_are_equivalent_and_redacted(text):
    proxy = parse_proxy("Lighter_1_PROXY_1_URL", text)
    assert (proxy.host, proxy.port, proxy.username, proxy.password.reveal()) == ("10.0.0.1", 3128, "user", PASSWORD)
    assert proxy.url.reveal() == f"http://user:{PASSWORD}@10.0.0.1:3128"
    assert PASSWORD not in repr(proxy) and PASSWORD not in proxy.redacted


def test_proxies_grouped_in_order():
    s = from_env({"Lighter_1_PROXY_2_URL": "h2:2", "Lighter_1_PROXY_1_URL": "h1:1"})
    assert [p.host for p in s.proxies[1]] == ["h1", "h2"]


@pytest.mark.parametrize("env,variable", [
    ({"POLL_INTERVAL": "fast"}, "POLL_INTERVAL"),
    ({"POLL_INTERVAL": "0"}, "POLL_INTERVAL"),
    ({"RATE_LIMIT": "lots"}, "RATE_LIMIT"),
    ({"WS_MAX_CLIENTS": "0"}, "WS_MAX_CLIENTS"),
    ({"UPSTREAM_TIER": "gold"}, "UPSTREAM_TIER"),
    ({"WORKER_WS": "maybe"}, "WORKER_WS"),
    ({"WORKER_HTTP_TIMEOUT_S": "soon"}, "WORKER_HTTP_TIMEOUT_S"),
    ({"LIGHTER_BASE_URL": "ftp://x"}, "LIGHTER_BASE_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"Lighter_1_A_Account_Index": "x"}, "Lighter_1_A_Account_Index"),
    ({"Lighter_1_A_PRIVATE": KEY, "Lighter_1_A_API_KEY_Index": "4"}, "Lighter_1_A_Account_Index"),
    ({"Lighter_1_A_Account_Index": "1", "Lighter_1_A_PRIVATE": KEY}, "Lighter_1_A_API_KEY_Index"),
    ({"Lighter_1_A_Account_Index": "1", "Lighter_1_A_API_KEY_Index": "4", "Lighter_1_A_PRIVATE": KEY[:-2] + "zz"},
     "Lighter_1_A_PRIVATE"),
    ({"Lighter_1_PROXY_1_URL": f"socks5://u:{PASSWORD}@h:1"}, "Lighter_1_PROXY_1_URL"),
    ({"Lighter_1_PROXY_1_URL": f"h:notaport:u:{PASSWORD}"}, "Lighter_1_PROXY_1_URL"),
])
def test_errors_name_the_variable_and_hide_secrets(env, variable):
    with pytest.raises(SettingsError) as info:
        from_env(env)
    message = str(info.value)
    assert variable in message
    assert KEY[:-2] not in message and PASSWORD not in message


def test_tiers_give_requests_per_minute():
    assert from_env({"UPSTREAM_TIER": "premium"}).requests_per_minute_per_egress == 80
    assert from_env({"UPSTREAM_TIER": "unlimited"}).requests_per_minute_per_egress is None
    assert from_env({"UPSTREAM_REQUESTS_PER_MINUTE": "30"}).requests_per_minute_per_egress == 30


# Issue 13 item 6: each value below was once accepted, or failed with a traceback instead of a message.
@pytest.mark.parametrize("env,variable", [
    ({"POLL_INTERVAL": "inf"}, "POLL_INTERVAL"),
    ({"POLL_INTERVAL": "nan"}, "POLL_INTERVAL"),
    ({"CACHE_TTL": "1e999"}, "CACHE_TTL"),
    ({"WORKER_HTTP_TIMEOUT_S": "1e999"}, "WORKER_HTTP_TIMEOUT_S"),
    ({"RATE_LIMIT": "0/minute"}, "RATE_LIMIT"),
    ({"RATE_LIMIT": "0 per second"}, "RATE_LIMIT"),
    ({"RATE_LIMIT": "١٠٠/minute"}, "RATE_LIMIT"),
    ({"Lighter_1_main_Account_Index": "٥"}, "Lighter_1_main_Account_Index"),
    ({"WS_MAX_CLIENTS": "１０"}, "WS_MAX_CLIENTS"),
    ({"POLL_INTERVAL": "1_0"}, "POLL_INTERVAL"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"REDIS_URL": f"redis://user:{PASSWORD}@host:notaport/0"}, "REDIS_URL"),
    ({"REDIS_URL": f"redis://user:{PASSWORD}@:6379/0"}, "REDIS_URL"),
    ({"REDIS_URL": f"redis://user:{PASSWORD}@host:6379/zero"}, "REDIS_URL"),
    ({"PORT": "70000"}, "PORT"),
    ({"PORT": "0"}, "PORT"),
    ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY"),
    ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
])
def test_bad_values_are_refused_naming_the_variable(env, variable):
    with pytest.raises(SettingsError) as info:
        from_env(env)
    message = str(info.value)
    assert message.startswith(variable) and "\n" not in message
    assert PASSWORD not in message


@pytest.mark.parametrize("name,resembles", [
    ("API_TOKN", "API_TOKEN"),
    ("api_token", "API_TOKEN"),
    ("LIGHTER_BASEURL", "LIGHTER_BASE_URL"),
    ("Lighter_1_main_Acount_Index", "Lighter_1_main_Account_Index"),
    ("Lighter_1_main_account_index", "Lighter_1_main_Account_Index"),
    ("Lighter_1_PROXY_2_URLL", "Lighter_1_PROXY_2_URL"),
    ("POLL_INTERVALL", "POLL_INTERVAL"),
    ("REDIS-URL", "REDIS_URL"),
    ("WORKER_HTTP_TIMEOUT", "WORKER_HTTP_TIMEOUT_S"),
])
def test_near_misses_stop_the_start_naming_the_setting_they_resemble(name, resembles):
    secret_value = "do-not-print-" + PASSWORD
    with pytest.raises(SettingsError) as info:
        from_env({name: secret_value})
    message = str(info.value)
    assert message == f"{name} is not a setting (did you mean {resembles}?)"
    assert secret_value not in message


@pytest.mark.parametrize("name", ["WORKER_FOO", "WEB_NOTHING", "LIGHTER_SOMETHING", "Lighter_x", "UPSTREAM_GOLD"])
def test_unknown_names_in_our_namespaces_stop_the_start(name):
    with pytest.raises(SettingsError, match=f"^{name} is not a setting"):
        from_env({name: "1"})


def test_every_problem_is_named_at_once():
    with pytest.raises(SettingsError) as info:
        from_env({"API_TOKN": "x", "WORKER_FOO": "1"})
    assert "API_TOKN" in str(info.value) and "WORKER_FOO" in str(info.value)


@pytest.mark.parametrize("env", [
    # What platforms and shells set beside us must not look like our settings.
    {"PATH": "/bin", "HOME": "/root", "HOSTNAME": "h", "PWD": "/", "LANG": "C.UTF-8", "TERM": "xterm", "SHLVL": "1"},
    {"DYNO": "web.1", "REDIS_TLS_URL": "rediss://h:1", "DATABASE_URL": "postgres://h/db", "WEB_CONCURRENCY": "2"},
    {"RENDER": "true", "RENDER_SERVICE_ID": "srv-1", "IS_PULL_REQUEST": "false", "PYTHON_VERSION": "3.11",
     "DOTENV_FILE": "", "PYTHONUNBUFFERED": "1", "GUNICORN_CMD_ARGS": "--log-level info"},
])
def test_platform_variables_are_not_mistaken_for_settings(env):
    from_env(env)


def test_settings_read_are_known_without_a_list_by_hand():
    """Every documented setting in .env.example is read by from_env, so none of them is called unknown."""
    from tests.deploy.envdoc import documented_settings

    names = [name for name in documented_settings()[0] if not name.startswith("Lighter_")]
    assert "API_TOKEN" in names and "WORKER_WS" in names
    env = {name: "" for name in names}
    from_env(env)  # blank values take defaults; a name nobody reads would raise here


def test_accounts_keep_configuration_order_within_a_group():
    env = {"Lighter_2_zeta_Account_Index": "5", "Lighter_1_main_Account_Index": "3",
           "Lighter_1_hedge_Account_Index": "4", "Lighter_1_alpha_Account_Index": "9"}
    assert [(a.group, a.name) for a in from_env(env).accounts] == [(1, "main"), (1, "hedge"), (1, "alpha"),
                                                                    (2, "zeta")]
