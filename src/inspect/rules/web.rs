//! Header injection (CRLF), NoSQL operator injection and server-side request forgery.

use super::{rule, Class, Rule, Scope};

/// MongoDB query operators an API that takes JSON may be fed.
const OPS: &str = r"(?:unionwith|match|group|project|merge|out|addfields|replaceroot|graphlookup|facet|sample|bucket|ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|nor|not|elemmatch|function|accumulator|lookup|jsonschema|all|size|mod|options|bitsallset|bitsanyset)";

pub fn rules() -> Vec<Rule> {
    vec![
        rule(
            921100,
            Class::Crlf,
            1,
            "CRLF then header",
            r"\n\s*(?:set-cookie|location|content-[\w-]+|refresh|link|x-[\w-]+|access-control-[\w-]+|cache-control|transfer-encoding|host|cookie|authorization|status|http/\d|bcc|cc|reply-to|return-path)\s*:|\n\s*http/\d|\n\s*\n\s*<(?:html|body|script|svg|iframe|meta|img|a\s|!doctype)",
        )
        .scope(Scope::NotInFiles),
        rule(
            921110,
            Class::Crlf,
            1,
            "escaped CRLF left after decoding",
            r"(?:%0d|%0a|\\r|\\n)+\s*(?:set-cookie|location|content-[\w-]+|x-[\w-]+|refresh)\s*:",
        )
        .scope(Scope::NotInFiles),
        rule(
            921120,
            Class::Crlf,
            1,
            "characters whose low byte is CR or LF (latin1 truncation), then a header",
            r"(?:\x{010a}|\x{010b}|\x{010d}|\x{560a}|\x{560d})+\s*(?:set-cookie|location|content-[\w-]+|x-[\w-]+|refresh|access-control-[\w-]+|http/\d)\s*:",
        )
        .scope(Scope::NotInFiles),
        rule(
            935100,
            Class::Nosqli,
            1,
            "NoSQL query operator as a key, in brackets or in embedded JSON",
            format!(r#"^\s*\$(?:{OPS})\s*$|[\[.]\s*\$(?:{OPS})\b|\{{\s*["']?\$(?:{OPS})["']?\s*:|\\u0024(?:{OPS})\b"#),
        ),
        rule(
            935110,
            Class::Nosqli,
            1,
            "server-side JavaScript in a NoSQL query",
            r#"\$where\b|\bthis\s*\.\s*\w+\s*\.\s*match\s*\(|\bthis\s*\.\s*(?:password|passwd|pass|pwd|username|user|email|token|secret|role|isadmin)\b|;\s*return\s+(?:true|false|\d|this|db|sleep|/)|\bwhile\s*\(\s*new\s+date\s*\(|\bwhile\s*\(\s*(?:true|1)\s*\)\s*\{|\|\|\s*['"]?\w+['"]?\s*===?\s*['"]?\w+|\bdb\s*\.\s*(?:\w+\s*\.\s*)?(?:find|findone|drop|dropdatabase|remove|insert|update|eval|getcollection|getsiblingdb|runcommand)\s*\(|\bmapreduce\b|\$\$root\b"#,
        ),
        rule(
            936100,
            Class::Ldap,
            1,
            "LDAP filter injection: a closed filter then a new one",
            r"\*\s*\)\s*\(\s*[|&!]?\s*\(?\s*[\w.-]+\s*[~<>]?=|\)\s*\(\s*[|&!]\s*\(\s*[\w.-]+\s*[~<>]?=|\)\s*\(\s*[\w.-]+\s*[~<>]?=\s*\*\s*\)|\(\s*[|&]\s*\(\s*[\w.-]+\s*=\s*\*\s*\)",
        ),
        rule(
            934100,
            Class::Ssrf,
            1,
            "cloud metadata address",
            r"169\.254\.169\.254|169\.254\.170\.2\b|\b2852039166\b|0xa9fea9fe|0xa9\.0xfe\.0xa9\.0xfe|0251\.0376\.0251\.0376|::ffff:a9fe:a9fe|::ffff:169\.254|metadata\.google\.internal|metadata\.goog\b|100\.100\.100\.200|fd00:ec2::254|\binstance-data\b|/latest/(?:meta-data|user-data|api/token)|/computemetadata/v1|/metadata/(?:instance|identity)\b|/openstack/latest\b",
        ),
        rule(
            934110,
            Class::Ssrf,
            1,
            "URL scheme for internal protocols",
            r"\b(?:gopher|dict|tftp|netdoc)\s*:\s*/|\bjar\s*:\s*(?:https?|file|ftp)\b",
        ),
        rule(
            934120,
            Class::Ssrf,
            1,
            "loopback or an address in an unusual spelling",
            r"(?:https?|ftps?|gopher|dict|ldaps?|sftp|tftp|wss?)\s*:\s*[/\\]*(?:[^/@\s]*@)?\[?(?:127(?:\.\d+){1,3}|(?:(?:\d+|0x[0-9a-f]+)\.){0,3}(?:0x[0-9a-f]+|0[0-7]+)(?:\.(?:\d+|0x[0-9a-f]+)){0,3}|0(?:\.0+){0,3}|0x[0-9a-f]{1,8}(?:\.0x[0-9a-f]{1,2}){0,3}|0[0-7]{3,}(?:\.0?[0-7]*)*|\d{8,10}|::1?|::ffff:[0-9a-f.:]+|0:0:0:0:0:0:0:1|[\w.-]*\.(?:nip|xip|sslip)\.io|localtest\.me|lvh\.me|[\w.-]*\.rbndr\.us|[\w.-]*\.1u\.ms)\]?(?::\d+)?(?:[/?#\\]|$)",
        )
        .scope(Scope::NotReferer),
        rule(
            934130,
            Class::Ssrf,
            1,
            "URL authority confusion",
            r"://[^/\s?#]*@[^/\s]*@|://[^\s/?#]*#@|://[^\s/?#]*\\@|://[^/\s@]+@(?:\d|\[|0x|localhost)",
        ),
        rule(
            934140,
            Class::Ssrf,
            1,
            "a value that is a URL to a loopback, private or cluster-internal host",
            r"^\s*(?:https?|ftps?|gopher|dict|ldaps?|sftp|tftp|wss?)\s*:\s*[/\\]*(?:[^/@\s]*@)?(?:localhost(?:\.localdomain)?|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(?:1[6-9]|2\d|3[01])\.\d+\.\d+|169\.254\.\d+\.\d+|\[?f[cd][0-9a-f]{2}:[0-9a-f:]*\]?|\[?fe80:[0-9a-f:%\w]*\]?|[\w.-]+\.(?:internal|intranet|local|localdomain|lan|corp|consul|svc|svc\.cluster\.local)|kubernetes\.default|[a-z][\w-]*)(?::\d+)?(?:[/?#\\]|$)",
        )
        .scope(Scope::NotReferer),
        rule(934150, Class::Ssrf, 2, "LDAP URL", r"\bldaps?\s*:\s*//"),
    ]
}
