"""Names and values shaped like what Baileys really stores (PROTOCOL.md)."""

import json

CREDS = json.dumps(
    {
        "noiseKey": {
            "private": {"type": "Buffer", "data": "aGVsbG8gd29ybGQgcHJpdmF0ZSBrZXk="},
            "public": {"type": "Buffer", "data": "aGVsbG8gd29ybGQgcHVibGljIGtleQ=="},
        },
        "signedIdentityKey": {
            "private": {"type": "Buffer", "data": "c2lnbmVkIGlkZW50aXR5IHByaXY="},
            "public": {"type": "Buffer", "data": "c2lnbmVkIGlkZW50aXR5IHB1Yg=="},
        },
        "registrationId": 4711,
        "advSecretKey": "dGhpcyBpcyBub3QgYSByZWFsIHNlY3JldA==",
        "me": {"id": "5511987654321:12@s.whatsapp.net", "name": "Loja São João"},
        "account": {"details": "Q0FFU0JnZ0I=" * 40},
        "platform": "android",
    },
    separators=(",", ":"),
)

#: One key of every type Baileys writes, each with a value of its shape.
KEYS = {
    "creds": CREDS,
    "pre-key-1": '{"private":{"type":"Buffer","data":"cHJp"},"public":{"type":"Buffer","data":"cHVi"}}',
    "pre-key-812": '{"private":{"type":"Buffer","data":"eA=="},"public":{"type":"Buffer","data":"eQ=="}}',
    "session-5511987654321.0": '{"_sessions":{"BQ==":{"registrationId":1}},"version":"v1"}',
    "session-5511987654321:12.0": '{"_sessions":{},"version":"v1"}',
    "session-123456789012345_1.0": '{"_sessions":{},"version":"v1"}',
    "sender-key-120363012345678901@g.us::5511987654321::0": '[{"senderKeyId":1}]',
    "sender-key-memory-120363012345678901@g.us": '{"5511987654321:12@s.whatsapp.net":true}',
    "app-state-sync-key-AAAAAPj/kQ==": '{"keyData":"a2V5","fingerprint":{"rawId":1}}',
    "app-state-sync-key-AA//kQ+=": '{"keyData":"a2V5"}',
    "app-state-sync-version-regular_high": '{"version":12,"hash":"aGFzaA=="}',
    "lid-mapping-5511987654321": '"123456789012345@lid"',
    "device-list-5511987654321": '["0","12","34"]',
    "tctoken-5511987654321@s.whatsapp.net": '{"token":{"type":"Buffer","data":"dA=="}}',
    "identity-key-5511987654321.0": '{"type":"Buffer","data":"aWQ="}',
}

#: Values that are not objects, which the old worker answered as null.
PLAIN_VALUES = ['"just a string"', "[1,2,3]", "42", "true", "null", '"é ✓ 中文"']

#: Instance names end users choose.
INSTANCE_NAMES = ["loja-1", "Loja São João", "with space", "emoji 🎉", "a.b", ".hidden"]
