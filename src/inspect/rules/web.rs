//! Header injection (CRLF), NoSQL operator injection and server-side request forgery.

use super::{rule, Class, Rule, Scope};

/// MongoDB query operators an API that takes JSON may be fed.
const OPS: &str = r"(?:unionwith|match|group|project|merge|out|addfields|replaceroot|graphlookup|facet|sample|bucket|ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|nor|not|elemmatch|function|accumulator|lookup|jsonschema|all|size|mod|options|bitsallset|bitsanyset|bitsallclear|bitsanyclear|text|geowithin|geointersects|near|nearsphere|set|unset|inc|push|pull|pullall|addtoset|rename|setoninsert|currentdate|mul|min|max|pop|replacewith|sortbycount|currentop|collstats|indexstats|densify|documents|redact|plancachestats|listsessions)";

pub fn rules() -> Vec<Rule> {
    vec![
        rule(
            921100,
            Class::Crlf,
            1,
            "CRLF then header",
            r"\n\s*(?:set-cookie|location|content-[\w-]+|refresh|link|x-[\w-]+|access-control-[\w-]+|cache-control|transfer-encoding|host|cookie|authorization|status|http/\d|bcc|cc|reply-to|return-path|strict-transport-security|www-authenticate|proxy-authenticate|vary|expires|keep-alive|set-cookie2|clear-site-data|timing-allow-origin|forwarded|true-client-ip|user-agent|pragma|last-modified|etag|retry-after|content-security-policy|p3p)\s*:|\n\s*http/\d|\n\s*(?:get|post|put|delete|head|options|patch|connect|trace)\s+\S+\s+http/\d|\n\s*\n\s*<(?:html|body|script|svg|iframe|meta|img|a\s|!doctype)",
        )
        .scope(Scope::NotInFiles),
        rule(
            921110,
            Class::Crlf,
            1,
            "escaped CRLF left after decoding",
            r"(?:%0d|%0a|\\r|\\n)+\s*(?:set-cookie|location|content-[\w-]+|x-[\w-]+|refresh|www-authenticate|strict-transport-security|vary|expires|cache-control|access-control-[\w-]+|link|bcc|cc)\s*:",
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
            937100,
            Class::Prototype,
            1,
            "JavaScript prototype pollution",
            r#"__proto__|\bconstructor\s*(?:\.|\[\s*["'`]?)\s*prototype\b"#,
        ),
        rule(
            944200,
            Class::Deserialization,
            1,
            "Python, Ruby and .NET deserialization",
            r"!!python/|!ruby/(?:object|hash|struct|marshal|class|module)\b|(?:^|\n)c(?:os|posix|nt|subprocess|builtins|__builtin__|commands|pty|platform)\n\w+\n|\bgasv[a-z0-9+/]{16}|\by29zcnn5c3rlbq|\bkgnvcwpzexn0zw0|\baaeaaad/////|\bsystem\.windows\.data\.objectdataprovider\b|\bsystem\.diagnostics\.process\b|\bsystem\.management\.automation\b|\btypeconfusedelegate\b|\btextformattingrunproperties\b|\bwindowsidentity\b.{0,40}\bbootstrapcontext\b|\bgem::(?:installer|requirement|specification|package::tarreader)\b|\bnet::(?:writeadapter|bufferedio)\b",
        ),
        rule(
            934100,
            Class::Ssrf,
            1,
            "cloud metadata address",
            r"169\.254\.169\.254|169\.254\.170\.2\b|\b2852039166\b|0xa9fea9fe|0xa9\.0xfe\.0xa9\.0xfe|0251\.0376\.0251\.0376|::ffff:a9fe:a9fe|::ffff:169\.254|metadata\.google\.internal|metadata\.goog\b|100\.100\.100\.200|fd00:ec2::254|\binstance-data\b|/latest/(?:meta-data|user-data|api/token)|/\d{4}-\d\d-\d\d/(?:meta-data|user-data|dynamic)\b|/meta-data/iam/|\b169\.254\.\d{3,5}(?:[:/?#\\\s]|$)|\b169\.\d{6,8}(?:[:/?#\\\s]|$)|/computemetadata/v1|/metadata/(?:instance|identity)\b|/openstack/latest\b",
        ),
        rule(
            934110,
            Class::Ssrf,
            1,
            "URL scheme for internal protocols",
            r"\b(?:gophers?|dict|tftp|netdoc|telnet|smtps?|imaps?|pop3s?|mqtts?|rtsp|rtmp)\s*:\s*/|\bjar\s*:\s*(?:https?|file|ftp)\b",
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
            r"^\s*(?:https?|ftps?|gopher|dict|ldaps?|sftp|tftp|wss?)\s*:\s*[/\\]*(?:[^/@\s]*@)?(?:(?:[\w-]+\.)*localhost\.?(?:localdomain\.?)?|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(?:1[6-9]|2\d|3[01])\.\d+\.\d+|169\.254\.\d+\.\d+|\[?f[cd][0-9a-f]{2}:[0-9a-f:]*\]?|\[?fe80:[0-9a-f:%\w]*\]?|[\w.-]+\.(?:internal|intranet|local|localdomain|lan|corp|consul|svc|svc\.cluster\.local)|kubernetes\.default|[a-z][\w-]*)(?::\d+)?(?:[/?#\\]|$)",
        )
        .scope(Scope::NotReferer),
        rule(934150, Class::Ssrf, 2, "LDAP URL", r"\bldaps?\s*:\s*//"),
    ]
}
