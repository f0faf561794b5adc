"""Behaviour of `console.cache.redact`: PII and secret redaction applied at ingest."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable

import pytest

from console.cache import redact as redact_module
from console.cache.redact import CACHE_MAX_ENTRIES, RedactionRuleError, Redactor
from console.config import RedactionRule, RedactionSettings

ALL = RedactionSettings()
# A harmless user rule switches the redactor to its general (no fast path, no prepend) mode;
# every built-in expectation below must hold in both modes.
WITH_USER_RULE = RedactionSettings(
    rules=[RedactionRule(name="never", pattern=r"NEVER-MATCHES-\d{40}", placeholder="[X]")]
)


@pytest.fixture(params=["fast", "general"])
def redactor(request: pytest.FixtureRequest) -> Redactor:
    return Redactor(ALL if request.param == "fast" else WITH_USER_RULE)


def unchanged(r: Redactor, text: str) -> bool:
    return r.redact(text) == (text, 0)


# --- corpora (also used to prove the fast path never skips a real match) -------------------

EMAILS = [
    "bob@example.com",
    "bob.smith+tag@mail.example.co.uk",
    "first_last%x@sub-domain.example.org",
    "müller@beispiel.de",
]
PHONES = [
    "+1 415 555 0100",
    "(415) 555-0100",
    "415-555-0100",
    "+44 20 7946 0958",
    "+14155550100",
    "415.555.0100",
    "1-800-555-0100",
    "+1 (415) 555-0100",
    "+33 1 23 45 67 89",
]
CARDS = [
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "5555 5555 5555 4444",
    "378282246310005",
    "3782 822463 10005",
    "6011111111111117",
    "4012888888881881",
]
SSNS = ["123-45-6789", "078-05-1120", "899-12-3456"]
IPS = [
    "10.0.0.1",
    "192.168.1.254",
    "255.255.255.255",
    "0.0.0.0",
    "8.8.8.8",
    "fe80::1",
    "::1",
    "2001:db8::8a2e:370:7334",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "::ffff:10.0.0.1",
    "2001:db8:85a3::8a2e:370:7334",
]
SECRETS = [
    "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "sk-admin-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-AbCdEfGh_IjKl",
    "sk-ant-admin01-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef",
    "sk-lf-12345678-90ab-cdef-1234-567890abcdef",
    "pk-lf-12345678-90ab-cdef-1234-567890abcdef",
    "sk-Zx9Yw8Vu7Ts6Rq5Po4Nm",  # LiteLLM virtual key: sk- + 20 url-safe chars
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2,
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "xoxb-1234567890-abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]
NOT_PII = [
    "chat",
    "gpt-4o-mini",
    "api.openai.com",
    "support-chatbot",
    "claude-3-5-sonnet-20241022",
    "1234",
    "12345678",
    "token count 4096",
    "1735689600",
    "1735689600123",
    "1735689600123456789",
    "1.2.3",
    "v1.2.3",
    "version 1.2.3 released",
    "2024-07-18",
    "2024-07-18T12:30:45.123Z",
    "12:30:45",
    "a:b",
    "std::vector<int>",
    "xs[1::2]",
    "00:1a:2b:3c:4d:5e",
    "deadbeefcafebabe",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "3.14159265",
    "+3.14159265",
    "latency 1234.5678 ms",
    "0.123456789012345",
    "1.2.3.4.5",
    "999.1.1.1",
    "256.1.1.1",
    "4111 1111 1111 1112",
    "1234 5678 9012 3456",
    "000-12-3456",
    "666-12-3456",
    "912-12-3456",
    "123-00-4567",
    "123-45-0000",
    "user@localhost",
    "not an @ email",
    "task-abcdefghijklmnopqrstuvwxyz0123",
    "risk-assessment-framework-for-llm-apps",
    "the input_tokens: 512",
    "POST /v1/chat/completions",
    "us-east-1",
    "",
]


# --- detectors -------------------------------------------------------------------------------


@pytest.mark.parametrize("email", EMAILS)
def test_email_address_redacted(redactor: Redactor, email: str) -> None:
    assert redactor.redact(f"contact {email} today") == ("contact [EMAIL] today", 1)


@pytest.mark.parametrize("phone", PHONES)
def test_phone_number_redacted(redactor: Redactor, phone: str) -> None:
    assert redactor.redact(f"call {phone} now") == ("call [PHONE] now", 1)
    assert redactor.redact(phone) == ("[PHONE]", 1)


@pytest.mark.parametrize(
    "text",
    ["1234", "1735689600", "1.2.3", "2024-07-18", "deadbeef1234", "3.14159265",
     "+3.14159265", "+1 2 3", "tokens=123456 total", "0x7ffd5e8c"],
)
def test_phone_detector_ignores_numbers_that_are_not_phones(redactor: Redactor, text: str) -> None:
    assert unchanged(redactor, text)


@pytest.mark.parametrize("card", CARDS)
def test_card_number_redacted_when_luhn_valid(redactor: Redactor, card: str) -> None:
    assert redactor.redact(f"card: {card}.") == ("card: [CARD].", 1)


def test_card_number_redacted_only_when_luhn_valid(redactor: Redactor) -> None:
    assert redactor.redact("4111 1111 1111 1111") == ("[CARD]", 1)
    assert redactor.redact("4111-1111-1111-1111") == ("[CARD]", 1)
    assert unchanged(redactor, "4111 1111 1111 1112")
    assert unchanged(redactor, "4111111111111112")


def test_card_detector_ignores_timestamps_and_mixed_separators(redactor: Redactor) -> None:
    # Luhn-valid digit runs that are not cards: issuer prefix check (unix ms / ns start with 1)
    assert unchanged(redactor, "1735689600004")  # Luhn-valid unix milliseconds
    assert unchanged(redactor, "ts=1735689600000000007")  # 19-digit unix nanoseconds
    assert unchanged(redactor, "4111 1111-1111 1111")  # separators must be consistent


@pytest.mark.parametrize("ssn", SSNS)
def test_ssn_redacted(redactor: Redactor, ssn: str) -> None:
    assert redactor.redact(f"SSN {ssn}") == ("SSN [SSN]", 1)


@pytest.mark.parametrize("text", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567",
                                  "123-45-0000", "1234-56-7890", "123-45-67890", "2024-07-18"])
def test_invalid_ssn_forms_are_kept(redactor: Redactor, text: str) -> None:
    assert unchanged(redactor, text)


@pytest.mark.parametrize("ip", IPS)
def test_ip_address_redacted(redactor: Redactor, ip: str) -> None:
    assert redactor.redact(f"from {ip} to") == ("from [IP] to", 1)


def test_ip_address_redacted_inside_urls_and_with_ports(redactor: Redactor) -> None:
    assert redactor.redact("http://10.0.0.1:8080/x") == ("http://[IP]:8080/x", 1)
    assert redactor.redact("[2001:db8::1]:443") == ("[[IP]]:443", 1)
    assert redactor.redact("fe80::1%eth0") == ("[IP]%eth0", 1)
    assert redactor.redact("10.0.0.0/8 and 10.0.0.1.") == ("[IP]/8 and [IP].", 2)


@pytest.mark.parametrize("text", ["1.2.3.4.5", "999.1.1.1", "256.1.1.1", "v1.2.3.4", "1.2.3",
                                  "12:30:45", "a:b", "std::vector", "xs[1::2]", "10::20",
                                  "00:1a:2b:3c:4d:5e", "dead::beef"])
def test_ip_detector_ignores_versions_times_and_code(redactor: Redactor, text: str) -> None:
    assert unchanged(redactor, text)


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_token_redacted(redactor: Redactor, secret: str) -> None:
    assert redactor.redact(f"using {secret} here") == ("using [SECRET] here", 1)
    assert redactor.redact(secret) == ("[SECRET]", 1)


def test_bearer_token_keeps_the_scheme_word(redactor: Redactor) -> None:
    assert redactor.redact("Bearer abc.def-ghi_jkl") == ("Bearer [SECRET]", 1)
    assert redactor.redact("Authorization: Bearer sk-1234") == (
        "Authorization: Bearer [SECRET]", 1)
    assert redactor.redact("authorization: Basic dXNlcjpwYXNz") == (
        "authorization: Basic [SECRET]", 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api_key=hunter2", "api_key=[SECRET]"),
        ("apikey=hunter2&x=1", "apikey=[SECRET]&x=1"),
        ("x-api-key: hunter2", "x-api-key: [SECRET]"),
        ("X-Api-Key:hunter2", "X-Api-Key:[SECRET]"),
        ("OPENAI_API_KEY=hunter2", "OPENAI_API_KEY=[SECRET]"),
        ('{"api_key": "hunter2", "model": "gpt-4o"}', '{"api_key": "[SECRET]", "model": "gpt-4o"}'),
        ("password = 'hunter2'", "password = '[SECRET]'"),
        ("client_secret=hunter2", "client_secret=[SECRET]"),
        ("aws_secret_access_key = wJalrXUtnFEMI", "aws_secret_access_key = [SECRET]"),
        ("https://h/cb?token=abc123&state=x", "https://h/cb?token=[SECRET]&state=x"),
        ("postgres://app:hunter2@db:5432/x", "postgres://app:[SECRET]@db:5432/x"),
    ],
)
def test_key_value_secrets_redact_the_value_only(
    redactor: Redactor, text: str, expected: str
) -> None:
    assert redactor.redact(text) == (expected, 1)


def test_secrets_inside_json_and_urls_are_removed(redactor: Redactor) -> None:
    url = "https://x/v1?api_key=sk-abc123def456&model=gpt-4o"
    assert redactor.redact(url) == ("https://x/v1?api_key=[SECRET]&model=gpt-4o", 1)
    body = '{"headers": {"Authorization": "Bearer sk-ant-api03-AbCdEf123456"}, "n": 1}'
    assert redactor.redact(body) == ('{"headers": {"Authorization": "Bearer [SECRET]"}, "n": 1}', 1)
    escaped = '{"log": "retrying\\nkey sk-proj-Ab3dEf6hIj9kLm2nOp5q\\n"}'
    assert redactor.redact(escaped) == ('{"log": "retrying\\nkey [SECRET]\\n"}', 1)
    glued = '{"log": "retrying\\nsk-proj-Ab3dEf6hIj9kLm2nOp5q"}'  # no space after the escape
    assert redactor.redact(glued) == ('{"log": "retrying\\n[SECRET]"}', 1)


def test_private_key_block_redacted() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    assert Redactor(ALL).redact(f"key:\n{pem}\nbye") == ("key:\n[SECRET]\nbye", 1)


def test_secrets_win_over_phone_and_card_detectors(redactor: Redactor) -> None:
    key = "sk-proj-4155550100-4111111111111111-123-45-6789-1-800-555-0100"
    assert redactor.redact(f"key {key} end") == ("key [SECRET] end", 1)


CANARY = "sk-proj-Qz7Xv2Lm9Rk4Wp8Yd3Nc6Hb1Jf5Gs0Ta"
OPAQUE = "Qz7Xv2Lm9Rk4Wp8Yd3Nc"  # no recognisable prefix: only its key name betrays it
CANARY_EMBEDDINGS = [
    "{}",
    '"{}"',
    "'{}'",
    "({})",
    "<{}>",
    "[{}]",
    "{}.",
    "key={};",
    "Bearer {}",
    "bearer {}",
    "Authorization: Bearer {}",
    "authorization: bearer {}",
    "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
    "curl -H 'Authorization: Bearer {}' https://api.openai.com/v1/models",
    "https://x/v1?api_key={}",
    "https://x/v1?model=gpt-4o&api_key={}&stream=true",
    '{{"api_key": "{}"}}',
    '{{"headers": {{"authorization": ["Bearer {}"]}}}}',
    '{{\\"api_key\\": \\"{}\\"}}',
    "OPENAI_API_KEY={}",
    "x-api-key: {}",
    "error: invalid key {}, retrying",
    "line one\\n{}\\nline two",
    "postgres://app:{}@db/x",
]


@pytest.mark.parametrize("template", CANARY_EMBEDDINGS)
def test_canary_secret_never_survives(redactor: Redactor, template: str) -> None:
    out, n = redactor.redact(template.format(CANARY))
    assert n >= 1
    body = CANARY.removeprefix("sk-proj-")
    leaks = [body[i : i + 6] for i in range(len(body) - 5) if body[i : i + 6] in out]
    assert not leaks, out


OPAQUE_EMBEDDINGS = [  # key names (and schemes) that mark the next value as a secret
    "Bearer {}",
    "Authorization: Bearer {}",
    "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
    "curl -H 'Authorization: Bearer {}' https://api.openai.com/v1/models",
    "https://x/v1?model=gpt-4o&api_key={}&stream=true",
    '{{"api_key": "{}"}}',
    '{{"headers": {{"authorization": ["Bearer {}"]}}}}',
    '{{\\"api_key\\": \\"{}\\"}}',
    "OPENAI_API_KEY={}",
    "x-api-key: {}",
    "X-Goog-Api-Key: {}",
    "Proxy-Authorization: Basic {}",
    "password: {}",
    '"client_secret":"{}"',
    "refresh_token={}",
    "AWS_SESSION_TOKEN={}",
    "secret={}",
    "postgres://app:{}@db/x",
]


@pytest.mark.parametrize("template", OPAQUE_EMBEDDINGS)
def test_opaque_secret_after_a_key_name_never_survives(redactor: Redactor, template: str) -> None:
    out, n = redactor.redact(template.format(OPAQUE))
    assert n == 1
    assert not [OPAQUE[i : i + 6] for i in range(len(OPAQUE) - 5) if OPAQUE[i : i + 6] in out], out


# --- counting, negatives, idempotence ---------------------------------------------------------


def test_replacement_count_covers_every_detector(redactor: Redactor) -> None:
    text = (
        "user bob@example.com (SSN 123-45-6789) called +1 415 555 0100 from 10.1.2.3, "
        "paid with 4111 1111 1111 1111 using key sk-proj-Ab3dEf6hIj9kLm2nOp5q"
    )
    out, n = redactor.redact(text)
    assert n == 6
    assert out == (
        "user [EMAIL] (SSN [SSN]) called [PHONE] from [IP], paid with [CARD] using key [SECRET]"
    )


@pytest.mark.parametrize("text", NOT_PII)
def test_ordinary_span_values_are_left_alone(redactor: Redactor, text: str) -> None:
    assert unchanged(redactor, text)


def test_redacting_twice_changes_nothing_more(redactor: Redactor) -> None:
    for text in ["Authorization: Bearer sk-1234", "api_key=abc", "a@b.io 10.0.0.1"]:
        once, _ = redactor.redact(text)
        assert redactor.redact(once) == (once, 0)


# --- settings ---------------------------------------------------------------------------------


def test_disabled_redaction_returns_text_unchanged() -> None:
    r = Redactor(RedactionSettings(enabled=False))
    text = "bob@example.com sk-proj-Ab3dEf6hIj9kLm2nOp5q 10.0.0.1"
    assert r.redact(text) == (text, 0)


def test_only_enabled_builtin_detectors_run() -> None:
    r = Redactor(RedactionSettings(builtin=["email"]))
    assert r.redact("bob@example.com from 10.0.0.1 call 415-555-0100") == (
        "[EMAIL] from 10.0.0.1 call 415-555-0100", 1)
    none = Redactor(RedactionSettings(builtin=[]))
    assert none.redact("bob@example.com 10.0.0.1") == ("bob@example.com 10.0.0.1", 0)
    secrets_only = Redactor(RedactionSettings(builtin=["secret"]))
    assert secrets_only.redact("api_key=x bob@example.com") == (
        "api_key=[SECRET] bob@example.com", 1)


def test_unknown_builtin_detector_is_rejected() -> None:
    with pytest.raises(RedactionRuleError, match="unknown detector"):
        Redactor(RedactionSettings(builtin=["email", "passport"]))


def test_user_rules_use_their_own_placeholder() -> None:
    r = Redactor(RedactionSettings(rules=[
        RedactionRule(name="acme-ids", pattern=r"ACME-\d{6}", placeholder="[ACME_ID]"),
        RedactionRule(name="tenant", pattern=r"(?i)tenant-[a-z]+"),
        RedactionRule(name="ticket", pattern="(?x) TKT - [0-9]+  # ticket ids", placeholder="[T]"),
    ]))
    assert r.redact("order ACME-123456 for Tenant-Globex from 10.0.0.1 re TKT-42") == (
        "order [ACME_ID] for [REDACTED] from [IP] re [T]", 4)


def test_user_rule_anchors_see_the_original_string() -> None:
    r = Redactor(RedactionSettings(rules=[
        RedactionRule(name="prefix", pattern=r"^internal:", placeholder="[INTERNAL]")
    ]))
    assert r.redact("internal: x") == ("[INTERNAL] x", 1)
    assert r.redact("not internal: x") == ("not internal: x", 0)


def test_user_rule_with_bad_pattern_names_the_rule() -> None:
    # config.py also rejects such patterns at load; the redactor checks on its own too
    bad = RedactionRule.model_construct(name="acme-ids", pattern=r"ACME-(\d+", placeholder="[X]")
    rules = [
        RedactionRule(name="ok-1", pattern=r"A\d+"),
        RedactionRule(name="ok-2", pattern=r"B\d+"),
        bad,
    ]
    with pytest.raises(RedactionRuleError) as info:
        Redactor(RedactionSettings(rules=rules))
    assert str(info.value).startswith('redaction.rules[2] ("acme-ids"): bad pattern: ')
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("pattern", [r"x*", r"(a)\1"])
def test_user_rules_that_cannot_be_combined_safely_are_rejected(pattern: str) -> None:
    with pytest.raises(RedactionRuleError, match=r'redaction.rules\[0\] \("r"\): bad pattern'):
        Redactor(RedactionSettings(rules=[RedactionRule(name="r", pattern=pattern)]))


# --- fast path and cache ----------------------------------------------------------------------


def _corpus() -> list[str]:
    found = EMAILS + PHONES + CARDS + SSNS + IPS + SECRETS
    wrapped = [f"x {s} y" for s in found] + [f'{{"v":"{s}"}}' for s in found]
    kv = [t.format(CANARY) for t in CANARY_EMBEDDINGS]
    kv += [t.format(OPAQUE) for t in OPAQUE_EMBEDDINGS]
    extra = ["Bearer abc", "BEARER abc", "-----BEGIN PRIVATE KEY-----x", "a\\u0022sk-1234"]
    return found + wrapped + kv + NOT_PII + extra


def test_fast_path_never_skips_a_real_match() -> None:
    fast = Redactor(ALL)
    slow = Redactor(ALL)
    slow._fast_path = False  # every string goes through the full regex
    for text in _corpus():
        expected = slow.redact(text)
        assert fast.redact(text) == expected, text
        if expected[1]:
            assert redact_module._TRIGGER.search(text), text


def test_fast_path_skips_plain_identifiers() -> None:
    for text in ["chat", "gpt-4o-mini", "api.openai.com", "support-chatbot", "us-east-1"]:
        assert redact_module._TRIGGER.search(text) is None, text


def test_cache_is_bounded_and_skips_long_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CACHE_MAX_ENTRIES == 65_536
    monkeypatch.setattr(redact_module, "CACHE_MAX_ENTRIES", 8)
    r = Redactor(ALL)
    for i in range(50):
        assert r.redact(f"host-{i} 10.0.0.{i}") == (f"host-{i} [IP]", 1)
        assert len(r._cache) <= 8
    long_text = "bob@example.com " + "x" * 300
    assert r.redact(long_text) == ("[EMAIL] " + "x" * 300, 1)
    assert long_text not in r._cache
    assert r.redact("bob@example.com") == r.redact("bob@example.com") == ("[EMAIL]", 1)


def test_module_imports_no_textual_or_panels() -> None:
    code = (
        "import sys, console.cache.redact; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'panels')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- micro-benchmark (a sanity check here; run this file directly to see timings) --------------


def micro_benchmark(r: Redactor, texts: Iterable[str]) -> tuple[float, int, int]:
    """Redact every text once; return (seconds per call, calls, replacements)."""
    calls = replaced = 0
    start = time.perf_counter()
    for text in texts:
        replaced += r.redact(text)[1]
        calls += 1
    return (time.perf_counter() - start) / max(calls, 1), calls, replaced


SHORT_VALUES = ["chat", "gpt-4o-mini", "api.openai.com", "support-chatbot", "openai", "stop",
                "us-east-1", "claude-3-5-sonnet-20241022", "POST /v1/chat/completions", "200"]


def varied_sentences(n: int) -> list[str]:
    words = ("the user asked about billing and the model replied with a long answer on "
             "invoices refunds and please wait while we check").split()
    extras = ["mail jane{}@example.com", "call +1 415 555 01{:02d}", "from 10.0.{}.7",
              "key sk-proj-abcdefghijk{}lmnopqrstuvwxyz", "card 4111 1111 1111 1111 #{}",
              "took {} ms", "tokens={}", "retry {}", "", ""]
    return [
        " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8 + i % 23))
        + " " + extras[i % len(extras)].format(i % 100) + f" id {i}"
        for i in range(n)
    ]


def test_micro_benchmark_helper_runs() -> None:
    r = Redactor(ALL)
    _, calls, replaced = micro_benchmark(r, SHORT_VALUES * 100)
    assert (calls, replaced) == (1000, 0)
    _, calls, replaced = micro_benchmark(Redactor(ALL), varied_sentences(200))
    assert calls == 200 and replaced >= 100


if __name__ == "__main__":
    short = [SHORT_VALUES[i % len(SHORT_VALUES)] for i in range(1_000_000)]
    per_call, calls, _ = micro_benchmark(Redactor(ALL), short)
    print(f"{calls:,} short repeated strings: {per_call * 1e9:.0f} ns/call")
    sentences = varied_sentences(100_000)
    per_call, calls, replaced = micro_benchmark(Redactor(ALL), sentences)
    avg = sum(map(len, sentences)) / len(sentences)
    print(f"{calls:,} varied sentences (avg {avg:.0f} chars, {replaced:,} replacements): "
          f"{per_call * 1e6:.2f} us/call")
