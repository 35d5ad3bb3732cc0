from bot.redaction import ACCOUNT_NUMBER, CARD_NUMBER, PASSWORD, SECRET_TOKEN, redact, sensitive_kinds

import pytest


@pytest.mark.parametrize(
    "text, masked",
    [
        ("my password is Summer2024! and error 103", "my password is [password removed] and error 103"),
        ("pw: hunter2", "pw: [password removed]"),
        ("card 4111 1111 1111 1111 pls", "card [card number removed] pls"),
        ("acct 12345678901", "acct [account number removed]"),
        ("Tr0ub4dor&3 is what I use", "[password removed] is what I use"),
        ("token xoxb-1234567890-abcdefghij", "token [secret removed]"),
    ],
)
def test_secrets_are_masked(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "error 102 on chase since 2024-03-01",
        "I changed my password yesterday",
        "my password was reset and now 103",
        "https://secure.chase.com/web/auth",
        "QuickBooks Online error102 with BofA",
        "",
        "still getting (9999)",
        "qbo bank connection says the user name or password doesnt match",
        "safari autofill keeps putting my old bank password into the quickbooks sign in box",
        "is 103 a password problem",
        "bank forced a password update and now bank feeds fail",
        "password is wrong",
    ],
)
def test_ordinary_messages_are_untouched(text):
    assert redact(text) == text
    assert sensitive_kinds(text) == []


def test_kinds():
    assert sensitive_kinds("password: abc123xyz, card 4111111111111111, acct 99887766554") == sorted(
        [PASSWORD, CARD_NUMBER, ACCOUNT_NUMBER]
    )
    assert sensitive_kinds("sk-abcdefghijklmnop1234") == [SECRET_TOKEN]


def test_markup_and_code_are_not_taken_for_passwords():
    html = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    assert redact(html) == html
    assert redact("C:\\Users\\Bob2024\\Downloads\\export.csv") == "C:\\Users\\Bob2024\\Downloads\\export.csv"
